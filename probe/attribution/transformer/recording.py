"""Record, with forward hooks, what the ViT's own forward computes: each block's attention probabilities
(the output of ``attn.attn_drop``) and, for the relevance pass, the inputs and outputs of its parts.

``recording`` prepares the model for one forward and puts it back exactly as it was afterwards, also
when the forward raises: every module in eval mode, timm's fused attention (which never forms the
probabilities) and gradient checkpointing (which would run the blocks twice) off, our hooks removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..graph import UnsupportedModelError
from .structure import VitStructure

# slot -> (module path inside a block, what to keep: its input, output or both)
_BLOCK_SLOTS = {
    "block": ("", "both"),
    "qkv": ("attn.qkv", "both"),
    "attn": ("attn.attn_drop", "out"),
    "proj_in": ("attn.proj", "in"),
    "attn_branch": ("drop_path1", "out"),
    "fc1": ("mlp.fc1", "both"),
    "fc2_in": ("mlp.fc2", "in"),
    "mlp_branch": ("drop_path2", "out"),
}


@dataclass(frozen=True)
class BlockValues:
    """One block's forward values [B, N, ·] that the relevance pass reads (full recordings only)."""

    x: torch.Tensor  # block input
    out: torch.Tensor  # block output
    qkv_in: torch.Tensor
    qkv: torch.Tensor
    proj_in: torch.Tensor  # A·V with the heads merged
    attn_branch: torch.Tensor  # what the first residual adds
    fc1_in: torch.Tensor
    fc1_out: torch.Tensor
    fc2_in: torch.Tensor
    mlp_branch: torch.Tensor  # what the second residual adds


@dataclass(frozen=True)
class BlockTape:
    """One block's attention probabilities ``attn`` [B, H, N, N], and its other values when recorded in full."""

    attn: torch.Tensor
    values: BlockValues | None = None

    def full(self) -> BlockValues:
        """The block's other forward values; an error if the recording was not a full one (a bug)."""
        if self.values is None:
            raise RuntimeError("the relevance pass needs a full recording (recording(..., full=True))")
        return self.values


@dataclass
class Tape:
    """What one forward of the model computed."""

    blocks: list[BlockTape]
    logits: torch.Tensor  # [B, classes], the classifier's output
    linears: list[tuple[torch.Tensor, torch.Tensor]]  # (input, output) of each Linear from pooled feature to logits
    tokens: torch.Tensor | None  # [B, N, D] after the ViT's final norm (full recordings only)

    def final_tokens(self) -> torch.Tensor:
        """``tokens``; an error if the recording was not a full one (a bug)."""
        if self.tokens is None:
            raise RuntimeError("the relevance pass needs a full recording (recording(..., full=True))")
        return self.tokens


class Recorder:
    """Hooks that keep what the forward computes; ``tape(output)`` checks and returns it."""

    def __init__(self, structure: VitStructure, full: bool) -> None:
        self.structure = structure
        self.full = full
        self.values: dict[tuple[int, str], list] = {}
        self.handles: list = []

    def attach(self) -> None:
        s = self.structure
        slots = _BLOCK_SLOTS if self.full else {"attn": _BLOCK_SLOTS["attn"]}
        for index, block in enumerate(s.blocks):
            for slot, (path, keep) in slots.items():
                self._hook(block.get_submodule(path), (index, slot), keep)
        for index, (_, linear) in enumerate(s.linears):
            self._hook(linear, (-2 - index, "linear"), "both")
        self._hook(s.vit, (-1, "vit"), "out")
        if self.full:
            self._hook(s.vit.norm, (-1, "tokens"), "out")

    def _hook(self, module: nn.Module, key: tuple[int, str], keep: str) -> None:
        def keep_values(_module, args, output):
            value = {"in": args[0], "out": output, "both": (args[0], output)}[keep]
            self.values.setdefault(key, []).append(value)

        self.handles.append(module.register_forward_hook(keep_values))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def tape(self, output: object) -> Tape:
        """The recorded values, after checking that each part ran once and the output is the classifier's."""
        s = self.structure
        for (index, slot), seen in self.values.items():
            if len(seen) != 1:
                raise UnsupportedModelError(
                    f"module {self._where(index, slot)!r} ran {len(seen)} times in one forward; expected once"
                )
        value = {key: seen[0] for key, seen in self.values.items()}
        found = [value.get((-2 - index, "linear")) for index in range(len(s.linears))]
        linears = [pair for pair in found if pair is not None]
        if len(linears) < len(found):
            raise UnsupportedModelError(f"the classifier {s.head_path!r} did not run in the model's forward")
        head_in, logits = linears[-1]
        if not _same(output, logits):
            raise UnsupportedModelError(f"the model's output is not the output of its classifier {s.head_path!r}")
        if s.head is not s.vit.head and not _same(head_in, value.get((-1, "vit"))):
            raise UnsupportedModelError(
                f"the classifier {s.head_path!r} does not read the output of the ViT {s.vit_path or 'model'!r}"
            )
        blocks = []
        for index in range(len(s.blocks)):
            if (index, "attn") not in value:
                raise UnsupportedModelError(f"block {s.where(f'blocks.{index}')!r} did not run in the forward")
            values = None
            if self.full:
                (x, out), (qkv_in, qkv), (fc1_in, fc1_out) = (value[(index, slot)] for slot in ("block", "qkv", "fc1"))
                values = BlockValues(
                    x=x,
                    out=out,
                    qkv_in=qkv_in,
                    qkv=qkv,
                    proj_in=value[(index, "proj_in")],
                    attn_branch=value[(index, "attn_branch")],
                    fc1_in=fc1_in,
                    fc1_out=fc1_out,
                    fc2_in=value[(index, "fc2_in")],
                    mlp_branch=value[(index, "mlp_branch")],
                )
            blocks.append(BlockTape(attn=value[(index, "attn")], values=values))
        return Tape(blocks=blocks, logits=logits, linears=linears, tokens=value.get((-1, "tokens")))

    def _where(self, index: int, slot: str) -> str:
        s = self.structure
        if index >= 0:
            return s.where(f"blocks.{index}.{_BLOCK_SLOTS[slot][0]}".rstrip("."))
        if slot == "linear":
            return s.linears[-2 - index][0]
        return s.where({"vit": "", "tokens": "norm"}[slot]) or "the ViT"


@contextmanager
def recording(model: nn.Module, structure: VitStructure, full: bool) -> Iterator[Recorder]:
    """The model prepared for one recorded forward, and restored afterwards (also on errors)."""
    training = [(m, m.training) for m in model.modules()]
    attentions = [block.attn for block in structure.blocks]
    fused = [(a, a.fused_attn) for a in attentions if hasattr(a, "fused_attn")]
    checkpointing = getattr(structure.vit, "grad_checkpointing", False)
    recorder = Recorder(structure, full)
    try:
        model.eval()
        for attention, _ in fused:
            attention.fused_attn = False
        structure.vit.grad_checkpointing = False
        recorder.attach()
        yield recorder
    finally:
        recorder.detach()
        structure.vit.grad_checkpointing = checkpointing
        for attention, flag in fused:
            attention.fused_attn = flag
        for module, flag in training:
            module.training = flag


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)

"""Read a checkpoint file without ever running code from it.

Torch files go through ``torch.load(weights_only=True)`` with a short allowlist of
benign globals; ``.safetensors`` files hold no pickle at all; plain pickles (dill, JAX,
Haiku) are refused from their first bytes, before any unpickling. Every failure names
the file and says what to do.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, UnsafeCheckpointError

CONVERT_HINT = (
    "if you trust the file, convert it once in a trusted environment with "
    "`python scripts/convert_checkpoint.py --trust FILE OUT.pth` (it keeps only the tensors; "
    "see docs/BACKBONES.md, 'Converting a refused file')"
)

# The legacy (pre-1.6) torch format starts with a pickled magic number: protocol 2, LONG1 of 10 bytes.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PICKLE_SCAN_BYTES = 4 << 20
_SUSPECT_MODULES = ("dill", "jax", "jaxlib", "haiku", "numpy", "byol", "tensorflow", "optax")


def _inert_vicreg_filter(*args: Any, **kwargs: Any) -> None:
    """Stands in for VICReg's ``exclude_bias_and_norm``, stored by reference in its optimizer state.

    The reference is only kept, never needed; if a file tried to *call* it while loading,
    that would not be a VICReg checkpoint, so the call aborts the load.
    """
    raise UnsafeCheckpointError("a checkpoint tried to call exclude_bias_and_norm while loading; refused")


# Globals a weights_only load may resolve, each needed by a known format:
# - argparse.Namespace: the `args` entry of DINO full checkpoints (plain attribute bag, no code).
# - exclude_bias_and_norm under the two module names VICReg's training script runs as: the LARS
#   filter function in VICReg full checkpoints' optimizer param_groups. It resolves to an inert
#   local stand-in, never to the original function, so nothing from the file's world is imported.
SAFE_GLOBALS: list = [
    argparse.Namespace,
    (_inert_vicreg_filter, "__main__.exclude_bias_and_norm"),
    (_inert_vicreg_filter, "main_vicreg.exclude_bias_and_norm"),
]


@dataclass(frozen=True)
class RawCheckpoint:
    """What a file held, and how it was stored."""

    path: Path
    obj: Any
    container: str  # "torch-zip", "torch-legacy" or "safetensors"


def sniff(path: Path) -> str:
    """Classify a file from its first bytes: zip, torch-legacy, safetensors, pickle, hdf5, tar, gzip, empty, unknown."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "empty"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch-legacy"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return "unknown"


def read_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """Load the object stored in ``path`` safely, or raise a CheckpointError that names the file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    if p.is_dir():
        inside = sorted(
            q.name
            for q in p.iterdir()
            if q.suffix in {".pth", ".pt", ".tar", ".ckpt", ".torch", ".safetensors", ".bin"}
        )
        hint = f"; checkpoint-like files inside: {', '.join(inside[:8])}" if inside else ""
        raise CheckpointError(f"{p} is a directory, not a checkpoint file; pass the file itself{hint}")
    kind = sniff(p)
    if kind == "empty":
        raise CheckpointError(f"{p} is empty (0 bytes): the download or copy did not finish")
    if kind == "zip":
        _check_torch_zip(p)
        return RawCheckpoint(p, _torch_load(p), "torch-zip")
    if kind == "torch-legacy":
        return RawCheckpoint(p, _torch_load(p), "torch-legacy")
    if kind == "safetensors":
        return RawCheckpoint(p, _safetensors_load(p), "safetensors")
    if kind == "pickle":
        raise UnsafeCheckpointError(_plain_pickle_message(p))
    if kind == "hdf5":
        raise CheckpointError(
            f"{p} is an HDF5 file (Keras/TensorFlow weights); only PyTorch and .safetensors checkpoints are supported"
        )
    if kind in ("tar", "gzip"):
        raise CheckpointError(f"{p} is a {kind} archive, not a checkpoint: extract the checkpoint file from it first")
    with open(p, "rb") as handle:
        head = handle.read(8)
    raise CheckpointError(
        f"{p} is not a checkpoint ssl-probe can read (first bytes {head!r}); expected a torch file "
        "(.pth/.pth.tar/.ckpt/.torch, zip or legacy format) or a .safetensors file"
    )


def _check_torch_zip(path: Path) -> None:
    """A torch zip holds ``<archive>/data.pkl``; anything else is some other zip (TF release, npz...)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt zip/torch file ({exc})") from None
    if any(name.endswith("/constants.pkl") for name in names) or any("/code/" in name for name in names):
        raise UnsafeCheckpointError(_torchscript_message(path))
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    what = "a zip archive but not a torch checkpoint"
    if any(".index" in n or ".data-" in n or n.endswith("saved_model.pb") for n in names):
        what += (
            " (it looks like a TensorFlow checkpoint: convert it to PyTorch first, "
            "e.g. SimCLR with tonylins/simclr-converter)"
        )
    elif names and all(n.endswith(".npy") for n in names):
        what += " (it looks like a numpy .npz archive)"
    raise CheckpointError(f"{path} is {what}; it contains: {shown}")


def _torchscript_message(path: Path) -> str:
    return (
        f"refused to load {path}: it is a TorchScript archive (it holds code/ and constants.pkl, as OpenAI's CLIP "
        "releases do); loading one runs the TorchScript code stored in it, so ssl-probe never does. On a trusted "
        "machine, save its weights as a plain state dict once, e.g. "
        f"`python -c \"import torch; torch.save(torch.jit.load('{path.name}', map_location='cpu').state_dict(), "
        "'clip_state_dict.pt')\"` (the OpenAI keys it keeps tell ssl-probe to use QuickGELU), or with open_clip: "
        "`model = open_clip.create_model('ViT-B-16-quickgelu', pretrained=FILE)` (the file's model name with "
        "-quickgelu) and `torch.save(model.state_dict(), OUT)`, then load it with --arch clip_vit_quickgelu"
    )


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" not in text:
            raise CheckpointError(
                f"{path} is truncated or corrupt: {text.splitlines()[0] if text else exc!r}"
            ) from None
        raise UnsafeCheckpointError(_refused_global_message(path, text)) from None
    except UnsafeCheckpointError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # torch raises RuntimeError/EOFError/ValueError/OSError for damaged files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be read: {first}") from None


def _refused_global_message(path: Path, text: str) -> str:
    found = re.search(r"GLOBAL ([\w.<>]+) was not an allowed global", text)
    if found:
        what = f"it needs the Python global `{found.group(1)}`, which is not on ssl-probe's allowlist"
        if found.group(1).startswith("omegaconf."):
            what += " (omegaconf config objects in Lightning hyper_parameters)"
    else:
        detail = next((line.strip() for line in text.splitlines() if "WeightsUnpickler error" in line), "")
        detail = detail.removeprefix("WeightsUnpickler error: ")
        what = f"it contains pickle content that weights-only loading refuses ({detail})"
    return (
        f"refused to load {path}: {what}; loading it would run code from the file. "
        f"Only tensors, containers and a few benign types are accepted; {CONVERT_HINT}"
    )


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ValueError for damaged headers or data
        raise CheckpointError(f"{path} is a truncated or corrupt .safetensors file: {exc}") from None


def _pickle_clues(path: Path) -> tuple[int | None, list[str], list[str]]:
    """Protocol, referenced modules and notable strings of a pickle, read with pickletools (never unpickled)."""
    with open(path, "rb") as handle:
        data = handle.read(_PICKLE_SCAN_BYTES)
    protocol, modules, strings = None, [], []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "PROTO":
                protocol = arg
            elif opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                modules.append(arg.split(" ")[0])
            elif isinstance(arg, str) and len(arg) < 80:
                if arg.split(".")[0] in _SUSPECT_MODULES:
                    modules.append(arg)
                elif arg in ("experiment_state", "online_params", "target_params", "params", "state"):
                    strings.append(arg)
    except Exception:  # the scan stops at the first byte it cannot parse (truncated read, opcode soup)
        pass
    return protocol, list(dict.fromkeys(modules)), list(dict.fromkeys(strings))


def _plain_pickle_message(path: Path) -> str:
    protocol, modules, strings = _pickle_clues(path)
    clues = []
    if modules:
        clues.append("it references " + ", ".join(modules[:6]))
    if strings:
        clues.append("it has entries " + ", ".join(repr(s) for s in strings[:4]))
    looks_byol = "experiment_state" in strings or any(m.split(".")[0] in ("haiku", "jax", "dill") for m in modules)
    origin = " It looks like the BYOL JAX/Haiku release (a dill pickle of numpy arrays)." if looks_byol else ""
    return (
        f"refused to load {path}: it is a plain Python pickle (protocol {protocol}), not a PyTorch checkpoint"
        + (f"; {'; '.join(clues)}" if clues else "")
        + "."
        + origin
        + " Unpickling it would run arbitrary code (and needs the libraries that wrote it), so ssl-probe never does. "
        "Convert it offline in a trusted environment to a PyTorch state dict (for BYOL: chigur/byol-convert, "
        "then load the resulting .pth.tar, format 'byol'); see docs/BACKBONES.md."
    )


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()

"""``load`` and ``inspect``: file -> format -> backbone state dict -> architecture -> strict load.

Both share one plan; ``inspect`` reports what it found (leftover keys included), ``load`` refuses
anything that is not an exact fit and sanity-checks the result on a probe batch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from probe.devices import resolve_device
from probe.errors import ProbeError

from .archmatch import ArchChoice, KeyDiff, choose_arch, compare, profile, shapes_of, signature
from .backbone import Backbone, Source
from .errors import ArchitectureError, BackboneWarning, CheckpointError, UnknownFormatError
from .formats import Extraction, FormatChoice, choose_format, get_format
from .preprocessing import Preprocessing
from .reading import RawCheckpoint, file_sha256, read_checkpoint
from .registry import get_arch
from .report import CheckpointReport, summarize_dropped

_PROBE_BATCH = 3
_PROBE_SIZE = 32  # cheap even for a ResNet-50 4x; models that need their full input size get it
_LIST_LIMIT = 8


@dataclass
class _Plan:
    raw: RawCheckpoint
    sha256: str
    format: FormatChoice
    extraction: Extraction
    state_dict: dict[str, torch.Tensor]
    arch: ArchChoice | None
    arch_error: str | None
    expected: dict[str, tuple] | None  # the architecture's {key: shape}
    diff: KeyDiff | None
    nonfinite: list[str]

    @property
    def path(self) -> Path:
        return self.raw.path

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The architecture's preprocessing at the size its weights were built for, with the format's changes."""
        if self.arch is None:
            return None
        default = self.arch.spec.preprocessing
        size = int(self.arch.kwargs.get("img_size", default.input_size))
        return self.extraction.meta.preprocessing(default.replace(input_size=size))


def _as_float32(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Floating tensors as float32 (fp16/bf16 releases); returns the original floating dtypes seen."""
    out, dtypes = {}, set()
    for key, value in state_dict.items():
        if value.is_floating_point():
            dtypes.add(str(value.dtype).removeprefix("torch."))
            value = value.float()
        out[key] = value
    return out, dtypes


def _finite(tensor: torch.Tensor) -> bool:
    """All values finite; a cheap sum first (NaN/inf propagate), the exact test only if the sum is not finite."""
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _plan(path: str | os.PathLike, format: str | None, arch: str | None) -> _Plan:
    if arch is not None:
        get_arch(arch)  # an unknown name fails before the file is read, listing the known ones
    if format is not None:
        get_format(format)
    raw = read_checkpoint(path)
    try:
        choice = choose_format(raw.obj, str(raw.path), forced=format, arch_given=arch is not None)
    except UnknownFormatError as exc:
        raise UnknownFormatError(f"{exc}{_suggestion(raw.obj)}") from None
    try:
        extraction = choice.spec.extract(raw.obj)
    except CheckpointError as exc:
        raise type(exc)(f"{raw.path}: cannot read it as format {choice.spec.name!r}: {exc}") from None
    state_dict, dtypes = _as_float32(extraction.state_dict)
    if dtypes - {"float32"}:
        extraction.meta.notes.append(f"weights stored as {', '.join(sorted(dtypes))}; converted to float32")
    nonfinite = [k for k, v in state_dict.items() if v.is_floating_point() and not _finite(v)]
    shapes = shapes_of(state_dict)
    arch_choice, arch_error, expected, diff = None, None, None, None
    try:
        arch_choice = choose_arch(shapes, str(raw.path), forced=arch, hint=extraction.meta.arch_hint)
        expected = signature(arch_choice.spec, arch_choice.kwargs)
        diff = compare(expected, shapes)
    except ArchitectureError as exc:
        arch_error = str(exc)
    except ProbeError:
        raise
    except Exception as exc:  # a constructor rejecting the arguments read from the shapes
        arch_error = f"{raw.path}: cannot build architecture {arch!r} for these weights: {exc}"
    return _Plan(
        raw, file_sha256(raw.path), choice, extraction, state_dict, arch_choice, arch_error, expected, diff, nonfinite
    )


def _suggestion(obj: object) -> str:
    """What would load an undetected file, tried before it is said: a registered architecture, or nothing."""
    try:
        state_dict = get_format("plain").extract(obj).state_dict
    except CheckpointError:
        return ""  # not a dict of tensors: nothing to suggest
    try:
        choice = choose_arch(shapes_of(state_dict), "")
    except ArchitectureError:
        return (
            " No registered architecture fits its tensors, so it cannot be loaded as it is; a network of your own"
            " can be registered (backbones.register) and named with arch= (--arch)."
        )
    name = choice.spec.name
    return f" It loads with format='plain', arch={name!r} (--format plain --arch {name})."


def _caveats(plan: _Plan) -> list[str]:
    return list(plan.extraction.meta.caveats) + (list(plan.arch.caveats) if plan.arch else [])


def _problems(plan: _Plan) -> list[str]:
    problems = []
    if plan.arch_error:
        problems.append(plan.arch_error)
    elif plan.arch is not None and plan.diff is not None and not plan.diff.ok:  # a diff implies an arch
        problems.append(
            f"{plan.path}: the weights do not fit architecture {plan.arch.label} (format {plan.format.spec.name}, "
            f"after stripping and dropping heads): {plan.diff.describe()}"
        )
    if plan.nonfinite:
        listed = ", ".join(plan.nonfinite[:_LIST_LIMIT]) + (" ..." if len(plan.nonfinite) > _LIST_LIMIT else "")
        problems.append(f"{plan.path}: {len(plan.nonfinite)} weight tensors contain NaN or inf: {listed}")
    return problems


def inspect(path: str | os.PathLike, *, format: str | None = None, arch: str | None = None) -> CheckpointReport:
    """Describe a checkpoint: format and evidence, architecture, sizes, normalisation, dropped and leftover keys.

    Unreadable, unsafe or unrecognised files raise; a file that reads but would not load strictly
    is reported with ``problems`` (and ``loadable`` False).
    """
    plan = _plan(path, format, arch)
    meta = plan.extraction.meta
    prep = plan.preprocessing
    spec = plan.arch.spec if plan.arch else None
    notes = list(meta.notes) + (list(plan.arch.notes) if plan.arch else [])
    preprocess = " -> ".join(repr(t) for t in prep.transform().transforms) if prep else ""
    diff = plan.diff or KeyDiff()
    match = plan.format.match
    prof = profile(plan.arch.spec, plan.arch.kwargs) if plan.arch is not None else None
    return CheckpointReport(
        path=str(plan.path),
        sha256=plan.sha256,
        size_bytes=plan.path.stat().st_size,
        container=plan.raw.container,
        format=plan.format.spec.name,
        format_title=plan.format.spec.title,
        format_evidence=list(match.reasons) if match else ["given with format="],
        format_forced=match is None,
        also_matches=[f"{name} ({'; '.join(m.reasons)})" for name, m in plan.format.alternatives],
        variant=meta.variant,
        weights_at=meta.container,
        arch=spec.name if spec else None,
        arch_kwargs=dict(plan.arch.kwargs) if plan.arch else {},
        arch_evidence=list(plan.arch.reasons) if plan.arch else [],
        parameter_count=prof.parameter_count if prof else None,
        tensor_count=len(plan.state_dict),
        feature_dim=prof.feature_dim if prof else None,
        input_size=prep.input_size if prep else None,
        mean=prep.mean if prep else None,
        std=prep.std if prep else None,
        preprocess=preprocess,
        dropped=list(plan.extraction.dropped),
        dropped_summary=summarize_dropped(plan.extraction.dropped, meta.container_keys),
        ignored_entries=list(meta.ignored),
        missing=list(diff.missing),
        unexpected=list(diff.unexpected),
        mismatched=[f"{k} (checkpoint {list(a)}, model {list(b)})" for k, a, b in diff.mismatched],
        notes=notes,
        caveats=_caveats(plan),
        problems=_problems(plan),
    )


def _with_bn_counters(state_dict: dict[str, torch.Tensor], expected: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """Converted files may lack BatchNorm's ``num_batches_tracked``; it does not affect eval mode."""
    full = dict(state_dict)
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.tensor(0, dtype=torch.long)
    return full


def _instantiate(
    choice: ArchChoice, state_dict: dict[str, torch.Tensor], expected: dict[str, tuple]
) -> torch.nn.Module:
    """Build the architecture with the checkpoint's tensors, skipping the random initialisation when possible."""
    full = _with_bn_counters(state_dict, expected)
    with torch.device("meta"):
        model = choice.spec.create(**choice.kwargs)
    model.load_state_dict(full, strict=True, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # a non-persistent buffer: build for real
        model = choice.spec.create(**choice.kwargs)
        model.load_state_dict(full, strict=True)
    return model.eval()


def _check_features(backbone: Backbone, path: Path) -> int:
    """Run a seeded noise batch: non-finite features are an error, features without variance a warning.

    Returns the feature dimension observed.
    """
    features = None
    for size in dict.fromkeys((min(_PROBE_SIZE, backbone.input_size), backbone.input_size)):
        batch = torch.rand(_PROBE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
        batch = backbone.preprocessing.normalization.apply(batch)
        try:
            with torch.no_grad():
                features = backbone(batch)
            break
        except Exception:  # fixed-size models (ViTs) reject the small probe; the full size follows
            if size == backbone.input_size:
                raise
    if features is None:  # the last size (the backbone's own) either ran or raised
        raise RuntimeError(f"{path}: the probe batch was never run")
    if not bool(torch.isfinite(features).all()):
        raise CheckpointError(
            f"{path}: the loaded backbone produces NaN/inf features on a probe batch (broken BatchNorm statistics?)"
        )
    if float(features.var(dim=0).max()) <= 1e-12:
        warnings.warn(
            f"{path}: features have zero variance across a random probe batch (all {features.shape[-1]} dims constant, "
            f"max |f| = {float(features.abs().max()):.3g}); the weights may be degenerate (a known failure of some "
            "SimCLR v2 conversions)",
            BackboneWarning,
            stacklevel=3,
        )
    return int(features.shape[-1])


def load(
    path: str | os.PathLike, *, format: str | None = None, arch: str | None = None, device: str | torch.device = "cpu"
) -> Backbone:
    """Load a checkpoint as a :class:`Backbone`, strictly: every backbone key must fit the architecture.

    ``format`` and ``arch`` override detection (see ``backbones.list_formats()`` / ``list_archs()``).
    """
    plan = _plan(path, format, arch)
    problems = _problems(plan)
    if problems:
        error = ArchitectureError if (plan.arch_error or (plan.diff and not plan.diff.ok)) else CheckpointError
        raise error(" | ".join(problems))
    choice, expected, preprocessing = plan.arch, plan.expected, plan.preprocessing
    if choice is None or expected is None or preprocessing is None:  # no problem reported means an arch was built
        raise RuntimeError(f"{plan.path}: no architecture was chosen although no problem was reported")
    model = _instantiate(choice, plan.state_dict, expected)
    backbone = Backbone(
        model,
        arch=choice.spec.name,
        format=plan.format.spec.name,
        source=Source(plan.path, plan.sha256, plan.raw.container),
        feature_dim=0,  # measured on the probe batch below
        preprocessing=preprocessing,
        arch_kwargs=choice.kwargs,
    )
    backbone.feature_dim = _check_features(backbone, plan.path)
    for caveat in _caveats(plan):
        warnings.warn(f"{plan.path}: {caveat}", BackboneWarning, stacklevel=2)
    return backbone.to(resolve_device(device))

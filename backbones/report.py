"""``CheckpointReport``: what ``backbones.inspect`` finds in a file and ``probe backbones inspect`` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CheckpointReport:
    """Everything known about a checkpoint before (or instead of) loading it."""

    path: str
    sha256: str
    size_bytes: int
    container: str
    format: str
    format_title: str
    format_evidence: list[str]
    format_forced: bool
    also_matches: list[str]
    variant: str | None
    weights_at: str
    arch: str | None
    arch_kwargs: dict
    arch_evidence: list[str]
    parameter_count: int | None
    tensor_count: int
    feature_dim: int | None
    input_size: int | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    preprocess: str
    dropped: list[str]
    dropped_summary: list[str]
    ignored_entries: list[str]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def loadable(self) -> bool:
        """True when ``backbones.load`` would accept the file as inspected (same format/arch arguments)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loadable": self.loadable}

    def to_text(self) -> str:
        """A human-readable, line-per-field rendering."""
        norm = "none: RGB in [0, 1]" if self.mean is None else f"mean {self.mean}, std {self.std}"
        rows = [
            ("file", f"{self.path} ({_size(self.size_bytes)}, {self.container})"),
            ("sha256", self.sha256),
            ("format", f"{self.format} - {self.format_title}" + (" [forced]" if self.format_forced else "")),
            ("variant", self.variant or "-"),
            ("evidence", "; ".join(self.format_evidence) or "-"),
            ("also matches", "; ".join(self.also_matches) or "-"),
            ("weights at", self.weights_at or "top level"),
            ("architecture", self.arch_label()),
            ("arch evidence", "; ".join(self.arch_evidence) or "-"),
            ("parameters", f"{self.parameter_count:,}" if self.parameter_count is not None else "-"),
            ("tensors kept", str(self.tensor_count)),
            ("feature dim", str(self.feature_dim) if self.feature_dim is not None else "-"),
            ("input size", str(self.input_size) if self.input_size is not None else "-"),
            ("normalisation", norm),
            ("preprocess", self.preprocess or "-"),
            ("dropped (heads)", ", ".join(self.dropped_summary) or "none"),
            ("ignored entries", ", ".join(self.ignored_entries) or "none"),
            ("leftover keys", self._leftovers() or "none"),
        ]
        lines = [f"{name + ':':<17}{value}" for name, value in rows]
        lines += [f"{'note:':<17}{note}" for note in self.notes]
        lines += [f"{'caveat:':<17}{caveat}" for caveat in self.caveats]
        lines += [f"{'PROBLEM:':<17}{problem}" for problem in self.problems]
        lines.append(f"{'loadable:':<17}{'yes' if self.loadable else 'no'}")
        return "\n".join(lines)

    def arch_label(self) -> str:
        if self.arch is None:
            return "-"
        args = ", ".join(f"{k}={v!r}" for k, v in self.arch_kwargs.items())
        return f"{self.arch}({args})" if args else self.arch

    def _leftovers(self) -> str:
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if items:
                parts.append(
                    f"{label}: {', '.join(items[:10])}" + (f" ... (+{len(items) - 10})" if len(items) > 10 else "")
                )
        return "; ".join(parts)


def summarize_dropped(dropped: list[str], all_keys: tuple[str, ...]) -> list[str]:
    """Group dropped keys under the shortest dotted prefix no kept key shares, e.g. ``module.encoder_k.* (320)``."""
    dropped_set = set(dropped)
    kept_prefixes: set[str] = set()
    for key in all_keys:
        if key in dropped_set:
            continue
        parts = key.split(".")
        kept_prefixes.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    groups: dict[str, int] = {}
    for key in dropped:
        parts = key.split(".")
        cut = next((i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in kept_prefixes), len(parts))
        group = ".".join(parts[:cut]) + (".*" if cut < len(parts) else "")
        groups[group] = groups.get(group, 0) + 1
    return [f"{g} ({n})" if g.endswith("*") else g for g, n in groups.items()]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"

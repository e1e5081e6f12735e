"""The report's PNG figures: perturbation curves, metric bars, sanity curves (matplotlib, Agg canvas,
no pyplot state), and image strips with relevance overlays (numpy + Pillow, no text in the pixels:
captions live in the HTML, where they are escaped).

Overlays use a diverging colormap centred at 0 (red = positive relevance, blue = negative),
blended over the image with an opacity proportional to |relevance| / max |relevance|, so the
image stays visible where the map is near zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from probe.errors import ProbeValueError
from probe.evaluation.intervals import Estimate

from .results import BackboneResults, Member, MethodResults, RunResults, SideBySide, SpecificityExample

OVERLAY_CMAP = "RdBu_r"
OVERLAY_ALPHA = 0.75
TILE = 128  # smallest tile side in strips: small images are enlarged (nearest neighbour) to at least this
TILE_MAX = 160  # largest tile side: big images are shrunk, so a report with many classes stays small
GAP = 4
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CONTROL_COLOUR = "#7f7f7f"
BAR_METRICS = (
    ("positive_perturbation_auc", "pos. AUC (lower better)"),
    ("negative_perturbation_auc", "neg. AUC (higher better)"),
    ("pointing_game", "pointing game"),
    ("mask_energy", "mask energy"),
    ("miou", "mIoU"),
)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Float32 ``[H, W, 3]`` in [0, 1] from uint8 or float, HWC or CHW, RGB or grey."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ProbeValueError(f"image must be [H, W, 3], [3, H, W] or [H, W], got shape {np.asarray(image).shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return np.clip(arr, 0.0, 1.0)


def _resize_map(relevance: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rel = np.asarray(relevance, dtype=np.float32)
    if rel.ndim != 2:
        raise ProbeValueError(f"a relevance map must be [H, W], got shape {rel.shape}")
    if rel.shape == size:
        return rel
    resized = Image.fromarray(rel, mode="F").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def overlay(image: np.ndarray, relevance: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """uint8 ``[H, W, 3]``: ``relevance`` (resized to the image) in a zero-centred diverging colormap over ``image``."""
    rgb = as_rgb(image)
    rel = np.nan_to_num(_resize_map(relevance, rgb.shape[:2]))
    scale = float(np.abs(rel).max())
    signed = rel / scale if scale > 0 else np.zeros_like(rel)
    colour = colormaps[OVERLAY_CMAP]((signed + 1.0) / 2.0)[..., :3].astype(np.float32)
    weight = (alpha * np.abs(signed))[..., None]
    return np.round((rgb * (1 - weight) + colour * weight) * 255).astype(np.uint8)


def _fit(tile: np.ndarray, min_side: int = TILE, max_side: int = TILE_MAX) -> np.ndarray:
    """Enlarge small tiles by an integer factor (crisp pixels), shrink big ones to ``max_side``."""
    longest = max(tile.shape[:2])
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
        return np.asarray(Image.fromarray(tile).resize(size, Image.Resampling.LANCZOS))
    factor = max(1, min(-(-min_side // min(tile.shape[:2])), max_side // longest))
    return tile.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else tile


def _grid(rows: Sequence[Sequence[np.ndarray | None]]) -> np.ndarray:
    """Tiles (uint8 HWC, or None for an empty cell) laid out in rows on a white background."""
    tiles = [[None if t is None else _fit(t) for t in row] for row in rows]
    present = [t for row in tiles for t in row if t is not None]
    if not present:
        raise ProbeValueError("nothing to draw in an image strip")
    h = max(t.shape[0] for t in present)
    w = max(t.shape[1] for t in present)
    cols = max(len(row) for row in tiles)
    canvas = np.full((len(tiles) * (h + GAP) - GAP, cols * (w + GAP) - GAP, 3), 255, dtype=np.uint8)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            if t is not None:
                y, x = r * (h + GAP), c * (w + GAP)
                canvas[y : y + t.shape[0], x : x + t.shape[1]] = t
    return canvas


def _save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False)
    return path


def member_strip(members: Sequence[Member], path: Path) -> Path:
    """PNG of a pseudo-class's members: images on top, primary-method overlays below, control overlays last."""
    rows: list[list[np.ndarray | None]] = [
        [np.round(as_rgb(m.image) * 255).astype(np.uint8) for m in members],
        [overlay(m.image, m.map) for m in members],
    ]
    if any(m.control_map is not None for m in members):
        rows.append([None if m.control_map is None else overlay(m.image, m.control_map) for m in members])
    return _save_png(path, _grid(rows))


def specificity_strip(example: SpecificityExample, path: Path) -> Path:
    """PNG: the two-object image, the map of object a's pseudo-class, the map of object b's."""
    image = np.round(as_rgb(example.image) * 255).astype(np.uint8)
    maps = [overlay(example.image, m) for m in example.maps]
    return _save_png(path, _grid([[image, *maps]]))


def _save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def _series(
    backbone: BackboneResults, control: BackboneResults | None, method: str
) -> list[tuple[str, MethodResults, str, str]]:
    """(legend label, MethodResults, colour, line style) for every method, then the control's primary method."""
    series = [(name, m, PALETTE[i % len(PALETTE)], "-") for i, (name, m) in enumerate(backbone.methods.items())]
    if control is not None and method in control.methods:
        series.append((f"control ({method})", control.methods[method], CONTROL_COLOUR, "--"))
    return series


def _values(estimates: Sequence[Estimate | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values, lows and highs of a series of estimates (NaN where missing or without an interval)."""
    value = np.array([np.nan if e is None else e.value for e in estimates], dtype=float)
    low = np.array([np.nan if e is None or e.low is None else e.low for e in estimates], dtype=float)
    high = np.array([np.nan if e is None or e.high is None else e.high for e in estimates], dtype=float)
    return value, low, high


def _error_bars(value: float, e: Estimate) -> tuple[float, float]:
    """Distances from ``value`` down to the interval's low and up to its high (0 without an interval)."""
    if e.interval is None:
        return 0.0, 0.0
    low, high = e.interval
    return max(0.0, value - low), max(0.0, high - value)


def _low_end(e: Estimate) -> float:
    """The low end of the interval, or the value itself without an interval."""
    return e.interval[0] if e.interval is not None else e.value


def perturbation_figure(
    backbone: BackboneResults, control: BackboneResults | None, method: str, path: Path
) -> Path | None:
    """Survival curves, positive and negative perturbation side by side; None if no curve was measured."""
    series = _series(backbone, control, method)
    if not any(m.positive_curve or m.negative_curve for _, m, _, _ in series):
        return None
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, attr, title in (
        (axes[0], "positive_curve", "positive perturbation (lower is better)"),
        (axes[1], "negative_curve", "negative perturbation (higher is better)"),
    ):
        for label, m, colour, style in series:
            c = getattr(m, attr)
            if c is None:
                continue
            y, low, high = _values(c.y)
            ax.plot(c.x, y, style, color=colour, marker="o", markersize=3, label=label)
            ax.fill_between(c.x, low, high, color=colour, alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("fraction of pixels removed")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("prediction kept")
    axes[1].legend(fontsize=8, loc="lower left")
    return _save_figure(fig, path)


def metric_bars(backbone: BackboneResults, control: BackboneResults | None, method: str, path: Path) -> Path | None:
    """Grouped bars per metric (methods, then the control) with 95 % error bars, and the centre / mask-area
    baselines marked."""
    series = _series(backbone, control, method)
    metrics = [(key, label) for key, label in BAR_METRICS if any(getattr(m, key) is not None for _, m, _, _ in series)]
    if not metrics:
        return None
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(series)
    for s, (label, m, colour, _) in enumerate(series):
        xs, ys, errors = [], [], []
        for i, (key, _) in enumerate(metrics):
            e = getattr(m, key)
            if e is not None:
                xs.append(i - 0.4 + width * (s + 0.5))
                ys.append(e.value)
                errors.append(_error_bars(e.value, e))
        hatch = "//" if label.startswith("control") else None
        yerr = np.array(errors).T if errors else None
        ax.bar(
            xs,
            ys,
            width=width,
            color=colour,
            hatch=hatch,
            edgecolor="white",
            label=label,
            yerr=yerr,
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"},
        )
    baselines = {
        "pointing_game": (backbone.centre_pointing_game, "centre point"),
        "mask_energy": (backbone.mask_fraction, "mask area"),
    }
    for i, (key, _) in enumerate(metrics):
        value, label = baselines.get(key, (None, ""))
        if value is not None:
            ax.hlines(value.value, i - 0.45, i + 0.45, colors="black", linestyles=":", label=f"{label} baseline")
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics], fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return _save_figure(fig, path)


def sanity_figure(backbone: BackboneResults, control: BackboneResults | None, method: str, path: Path) -> Path | None:
    """Spearman similarity to the original maps per cascading-randomisation step; None if not measured."""
    curves = [
        (label, m.sanity, colour, style)
        for label, m, colour, style in _series(backbone, control, method)
        if m.sanity is not None
    ]
    if not curves:
        return None
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.subplots()
    for label, c, colour, style in curves:
        y, low, high = _values(c.similarity)
        ax.plot(range(len(y)), y, style, marker="o", color=colour, markersize=3, label=label)
        ax.fill_between(range(len(y)), low, high, color=colour, alpha=0.15, linewidth=0)
    steps = max((c.steps for _, c, _, _ in curves), key=len)
    labels = [s if len(s) <= 22 else s[:20] + "…" for s in steps]
    ax.set_xticks(range(len(steps)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Spearman similarity to original")
    ax.set_xlabel("randomised down to (cumulative, from the top layer)")
    ax.set_ylim(-0.25, 1.05)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_figure(fig, path)


def overview_figure(
    backbone: BackboneResults, control: BackboneResults | None, method: str, path: Path, colour: str = PALETTE[0]
) -> Path | None:
    """The verdict's figures at a glance: NMI, pointing game, mask energy and perturbation gap of ``backbone``
    (its primary method) against the control and the data-only baselines, each with its 95 % interval."""
    m = backbone.methods[method]
    c = control.methods.get(method) if control is not None else None
    zero = Estimate(0.0, 0.0, 0.0)
    rows = [  # (label, backbone's figure, control's figure, baseline's name, baseline's figure)
        ("NMI", backbone.clustering.nmi, control.clustering.nmi if control else None, None, None),
        (
            f"{method} pointing game",
            m.pointing_game,
            c.pointing_game if c else None,
            "centre point",
            backbone.centre_pointing_game,
        ),
        (f"{method} mask energy", m.mask_energy, c.mask_energy if c else None, "mask area", backbone.mask_fraction),
        (f"{method} perturbation gap", m.faithfulness_gap, c.faithfulness_gap if c else None, "random order", zero),
    ]
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return None
    fig = Figure(figsize=(9, 0.75 + 0.65 * len(rows)), layout="constrained")
    ax = fig.subplots()
    labelled: set[str] = set()
    for y, (_, mine, theirs, base_name, base) in enumerate(rows):
        points = (
            (mine, 0.18, colour, "o", backbone.name),
            (theirs, 0.0, CONTROL_COLOUR, "s", "random-init control"),
            (base, -0.18, "black", "D", "baseline"),
        )
        for e, offset, point_colour, marker, legend in points:
            if e is None:
                continue
            at = len(rows) - 1 - y + offset
            low, high = _error_bars(e.value, e)
            ax.errorbar(
                e.value,
                at,
                xerr=[[low], [high]],
                fmt=marker,
                color=point_colour,
                capsize=3,
                markersize=5,
                label=legend if legend not in labelled else None,
            )
            labelled.add(legend)
            if e is base and base_name is not None:
                ax.annotate(base_name, (e.value, at), xytext=(6, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=9)
    lows = [_low_end(e) for r in rows for e in (r[1], r[2], r[4]) if e is not None]
    ax.set_xlim(min(-0.05, min(lows) - 0.05), 1.02)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save_figure(fig, path)


def side_by_side_strip(side: SideBySide, path: Path) -> Path:
    """PNG of the side-by-side maps: the images on top (as the first backbone sees them), then one row of
    primary-method overlays per backbone, in the order of ``side.rows``."""
    rows = [[np.round(as_rgb(image) * 255).astype(np.uint8) for image in side.rows[0].images]]
    rows += [[overlay(image, relevance) for image, relevance in zip(row.images, row.maps)] for row in side.rows]
    return _save_png(path, _grid(rows))


def write_side_by_side(results: RunResults, report_dir: Path) -> str | None:
    """Draw ``results.side_by_side`` into ``report_dir/figures``; its relative path, or None when absent."""
    if results.side_by_side is None or not results.side_by_side.rows:
        return None
    relative = "figures/side_by_side.png"
    side_by_side_strip(results.side_by_side, report_dir / relative)
    return relative


@dataclass
class BackboneFigures:
    """Paths of one backbone's figures, relative to the report directory (None when not drawn)."""

    overview: str | None = None
    perturbation: str | None = None
    bars: str | None = None
    sanity: str | None = None
    classes: dict[int, str] = field(default_factory=dict)
    specificity: list[str] = field(default_factory=list)


def write_figures(results: RunResults, report_dir: Path) -> dict[str, BackboneFigures]:
    """Draw every figure of ``results`` into ``report_dir/figures``; returns their relative paths by backbone name.

    File names use the backbone's position and pseudo-class ids, never user strings. Controls get
    no figures of their own: they appear in their probe backbone's figures.
    """
    figures = {}
    for i, b in enumerate(results.backbones):
        if not b.judged:  # shown beside its probe backbone, never on its own
            figures[b.name] = BackboneFigures()
            continue
        control = results.control_of(b)
        rel = f"figures/b{i}_{{}}.png".format
        done = BackboneFigures()
        for attr, stem, draw in (
            ("overview", "overview", overview_figure),
            ("perturbation", "perturbation", perturbation_figure),
            ("bars", "metrics", metric_bars),
            ("sanity", "sanity", sanity_figure),
        ):
            if draw(b, control, b.method, report_dir / rel(stem)) is not None:
                setattr(done, attr, rel(stem))
        for pc in b.pseudo_classes:
            if pc.members:
                member_strip(pc.members, report_dir / rel(f"class{int(pc.id)}"))
                done.classes[pc.id] = rel(f"class{int(pc.id)}")
        for j, example in enumerate(b.specificity_examples):
            specificity_strip(example, report_dir / rel(f"specificity{j}"))
            done.specificity.append(rel(f"specificity{j}"))
        figures[b.name] = done
    return figures

"""Perturbation-test variants for the faithfulness experiments (scripts/faithfulness_puzzle.py, faithfulness_224.py).

The library's protocol (probe.evaluation.faithfulness) ranks pixels by the signed map, ties in row-major
order, and replaces them with black. These helpers vary one thing at a time: the pixel order, the
removal value, and report where a map's extreme pixels lie relative to object edges. Every figure is a
mean over images with a 95 % percentile-bootstrap interval (resampling images).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from probe.evaluation.faithfulness import STEPS, blurred, perturbation_auc

BOOTSTRAP = 2000
#: (map, pixel order, removal value) triples measured for every model.
CONFIGS = [
    *[("agf", order, "black") for order in ("signed", "positive_rowmajor", "positive_random", "smoothed")],
    ("agf_eps0", "signed", "black"),
    ("gradcam", "signed", "black"),
    ("random", "signed", "black"),
    ("mask", "positive_random", "black"),
    *[(m, "signed", fill) for fill in ("mean", "blur") for m in ("agf", "gradcam", "random")],
]


def bootstrap(values: np.ndarray, seed: int = 0) -> list[float]:
    """[mean, low, high]: the mean of ``values`` (one per image) and its 95 % percentile-bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [round(float(values.mean()), 4), round(float(lo), 4), round(float(hi), 4)]


def removal_order(maps: torch.Tensor, order: str, mode: str, seed: int = 0) -> torch.Tensor:
    """Rank of every pixel in the removal order ``[N, H*W]`` (0 = removed first) for one ordering rule.

    ``signed``: the map itself, ties in row-major order (the library's rule); ``positive_rowmajor``: its
    positive part, same ties; ``positive_random``: its positive part, ties in a seeded random order (the
    same order for every map of an image); ``smoothed``: the map after a box filter (5x5 at 64 px, 17x17 at 224 px).
    """
    if order == "smoothed":
        size = 2 * (maps.shape[-1] // 26) + 1  # 5x5 at 64 px, 17x17 at 224 px
        maps = F.avg_pool2d(maps[:, None], size, stride=1, padding=size // 2, count_include_pad=False)[:, 0]
    elif order.startswith("positive"):
        maps = maps.clamp(min=0)
    flat = maps.reshape(maps.shape[0], -1).double()
    key = -flat if mode == "positive" else flat
    if order == "positive_random":
        gen = torch.Generator().manual_seed(seed)
        perm = torch.stack([torch.randperm(flat.shape[1], generator=gen) for _ in range(flat.shape[0])]).to(flat.device)
        inner = torch.sort(torch.gather(key, 1, perm), dim=1, stable=True).indices
        sequence = torch.gather(perm, 1, inner)
    else:
        sequence = torch.sort(key, dim=1, stable=True).indices
    ranks = torch.empty_like(sequence)
    ranks.scatter_(1, sequence, torch.arange(flat.shape[1], device=flat.device).expand_as(sequence))
    return ranks


def filler(raw: torch.Tensor, kind: str, world_mean: torch.Tensor) -> torch.Tensor:
    """The replacement image ``[N, 3, H, W]`` in [0, 1]: black, the world's mean colour, or a blurred copy
    (the library's ``removal="blur"``: Gaussian, sigma 3/64 of the side)."""
    if kind == "black":
        return torch.zeros_like(raw)
    if kind == "mean":
        return world_mean.view(1, 3, 1, 1).expand_as(raw).clone()
    return blurred(raw)


@torch.inference_mode()
def hits(
    model, x: torch.Tensor, fill: torch.Tensor, target: torch.Tensor, ranks: dict[str, torch.Tensor], batch: int = 120
) -> dict[str, np.ndarray]:
    """Per mode, bool ``[N, S]``: is ``target`` still top-1 after the first fraction of pixels is replaced by ``fill``?

    The clean image (fraction 0) is classified once for all modes. Inputs go in channels-last layout (about twice
    as fast for these small convolutions on CPU); the model should be in the same layout.
    """
    n, _, h, w = x.shape
    ks = [int(np.floor(h * w * f + 1e-9)) for f in STEPS]
    out = {mode: np.zeros((n, len(STEPS)), dtype=bool) for mode in ranks}
    for start in range(0, n, batch):
        sl = slice(start, start + batch)
        xb, fb, tb = x[sl], fill[sl], target[sl]
        clean = (model(xb.contiguous(memory_format=torch.channels_last)).argmax(1) == tb).cpu().numpy()
        for mode, r in ranks.items():
            rb = r[sl].to(xb.device).reshape(-1, 1, h, w)
            for j, k in enumerate(ks):
                if k == 0:
                    out[mode][sl, j] = clean
                    continue
                removed = torch.where(rb < k, fb, xb).contiguous(memory_format=torch.channels_last)
                out[mode][sl, j] = (model(removed).argmax(1) == tb).cpu().numpy()
    return out


def auc_rows(h: np.ndarray) -> np.ndarray:
    return np.array([perturbation_auc(STEPS, row.astype(np.float64)) for row in h])


def edge_bands(masks: np.ndarray) -> dict[str, np.ndarray]:
    """Bool ``[N, H, W]`` bands of pixels within r px (8-neighbourhood) of an object edge, either side;
    r = 1 and 2 px at 64 px, scaled with the image (4 and 8 px at 224 px)."""
    m = torch.from_numpy(masks > 0).float()[:, None]
    scale = max(1, round(masks.shape[-1] / 64))
    bands = {}
    for r in (scale, 2 * scale):
        dil = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r) > 0
        ero = -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r) > 0
        bands[f"edge_{r}px"] = (dil & ~ero)[:, 0].numpy()
    bands["object"] = masks > 0
    return bands


def where_extremes(maps: torch.Tensor, bands: dict[str, np.ndarray], share: float = 0.1) -> dict:
    """Share of the most negative / most positive ``share`` of pixels in each band, vs all pixels."""
    flat = maps.reshape(maps.shape[0], -1)
    k = int(flat.shape[1] * share)
    lowest = torch.sort(flat.double(), dim=1, stable=True).indices[:, :k].numpy()
    highest = torch.sort(-flat.double(), dim=1, stable=True).indices[:, :k].numpy()
    out = {}
    for name, band in bands.items():
        b = band.reshape(band.shape[0], -1)
        out[name] = {
            "all_pixels": bootstrap(b.mean(1)),
            "most_negative": bootstrap(np.take_along_axis(b, lowest, 1).mean(1)),
            "most_positive": bootstrap(np.take_along_axis(b, highest, 1).mean(1)),
        }
    out["negative_pixels"] = bootstrap((flat < 0).double().mean(1).numpy())
    out["zero_pixels"] = bootstrap((flat == 0).double().mean(1).numpy())
    return out


#: Paired gap differences reported for every model: (label, setting a, setting b) -> gap(a) - gap(b) per image.
PAIRED = (
    ("gradcam - agf (signed, black)", ("gradcam", "signed", "black"), ("agf", "signed", "black")),
    ("agf positive_random - signed (black)", ("agf", "positive_random", "black"), ("agf", "signed", "black")),
    ("agf positive_rowmajor - signed (black)", ("agf", "positive_rowmajor", "black"), ("agf", "signed", "black")),
    (
        "agf positive_rowmajor - positive_random (black)",
        ("agf", "positive_rowmajor", "black"),
        ("agf", "positive_random", "black"),
    ),
    ("agf smoothed - signed (black)", ("agf", "smoothed", "black"), ("agf", "signed", "black")),
    ("agf eps 0 - eps 0.01 (signed, black)", ("agf_eps0", "signed", "black"), ("agf", "signed", "black")),
    ("gradcam - agf positive_random (black)", ("gradcam", "signed", "black"), ("agf", "positive_random", "black")),
    ("gradcam - agf smoothed (black)", ("gradcam", "signed", "black"), ("agf", "smoothed", "black")),
    ("agf: mean - black", ("agf", "signed", "mean"), ("agf", "signed", "black")),
    ("agf: blur - black", ("agf", "signed", "blur"), ("agf", "signed", "black")),
    ("gradcam - agf (mean)", ("gradcam", "signed", "mean"), ("agf", "signed", "mean")),
    ("gradcam - agf (blur)", ("gradcam", "signed", "blur"), ("agf", "signed", "blur")),
)


#: The verdict check: the primary method under the published removal and the proposed one, and its three outcomes.
VERDICT_CONFIGS = [("agf", "signed", "black"), ("agf", "signed", "blur")]
MINIMUM_EFFECT = 0.05


def outcome(interval: list[float], minimum: float = MINIMUM_EFFECT) -> str:
    """``passes`` when [mean, low, high] lies wholly above ``minimum``, ``fails`` when wholly below,
    else ``inconclusive``."""
    _, lo, hi = interval
    return "passes" if lo > minimum else "fails" if hi < minimum else "inconclusive"


def measure_model(
    model,
    raw: torch.Tensor,
    norm,
    masks: np.ndarray | None,
    maps: dict[str, torch.Tensor],
    target: torch.Tensor,
    world_mean: torch.Tensor,
    seed: int = 0,
    configs=CONFIGS,
) -> dict:
    """Every setting of ``configs`` on one model: AUCs, gaps with their outcome against :data:`MINIMUM_EFFECT`,
    curves; with the full :data:`CONFIGS` also the paired differences and edge shares (``masks`` needed).

    ``raw`` are the images in [0, 1] (on the model's device), ``norm`` turns [0, 1] images into the model's
    input, ``maps`` holds the maps named in ``configs`` (``mask`` included), ``target`` the tracked classes.
    """
    x = norm(raw)
    model = model.to(memory_format=torch.channels_last)
    fills = {kind: norm(filler(raw, kind, world_mean.to(raw.device))) for kind in {fill for _, _, fill in configs}}
    rows, per_image = [], {}
    for key, order, fill in configs:
        ranks = {m: removal_order(maps[key].to(raw.device), order, m, seed=seed) for m in ("positive", "negative")}
        h = hits(model, x, fills[fill], target, ranks)
        pos, neg = auc_rows(h["positive"]), auc_rows(h["negative"])
        per_image[(key, order, fill)] = neg - pos
        gap = bootstrap(neg - pos)
        rows.append(
            {
                "map": key,
                "order": order,
                "removal": fill,
                "positive_auc": bootstrap(pos),
                "negative_auc": bootstrap(neg),
                "gap": gap,
                "outcome": outcome(gap),
                "positive_curve": h["positive"].mean(0).round(4).tolist(),
                "negative_curve": h["negative"].mean(0).round(4).tolist(),
            }
        )
    if configs is not CONFIGS:
        return {"rows": rows}
    bands = edge_bands(masks)
    return {
        "rows": rows,
        "paired_gap_differences": {label: bootstrap(per_image[a] - per_image[b]) for label, a, b in PAIRED},
        "where": {key: where_extremes(maps[key].cpu(), bands) for key in ("agf", "agf_eps0", "gradcam")},
    }

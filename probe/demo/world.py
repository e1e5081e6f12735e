"""The synthetic world: seeded images of simple shape categories with per-pixel object masks.

Each image holds one category (about a fifth hold two), drawn as several instances with their
own position, size, rotation and colour over a random background. Colour, size and position
carry no category information, so only geometry tells the categories apart. Image ``i`` of a
world depends only on ``(seed, i)``, so any slice can be regenerated exactly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from probe.errors import ProbeValueError
from probe.fileio import atomic_path

SHAPES = ("bar", "crescent", "disc", "plus", "ring", "square", "star", "triangle")
DEFAULT_CATEGORIES = ("disc", "plus", "ring", "square", "star", "triangle")
BACKGROUNDS = ("gradient", "blobs", "stripes", "checker")
#: Bumped whenever the same config and seed start drawing different pixels (part of the array cache key).
RENDERER = 2
#: The arrays ``render_arrays`` returns (part of the array cache key).
ARRAYS = ("images", "masks", "labels", "n_categories", "backgrounds")
_SUPERSAMPLE = 4
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class WorldConfig:
    """How the world is drawn; every field is recorded in ``world.json``."""

    image_size: int = 64
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    instances: tuple[int, int] = (2, 4)  # instances per category in an image (inclusive)
    # instances of the second category in a two-category image (None: as many as ``instances``); one
    # instance keeps the image's label (its larger category) from being a coin toss
    second_instances: tuple[int, int] | None = (1, 1)
    radius: tuple[float, float] = (0.12, 0.2)  # radius of an equal-area disc, as a fraction of image size
    two_category_fraction: float = 0.2
    backgrounds: tuple[str, ...] = BACKGROUNDS
    background_band: float = 0.25  # luma spread of the background colours
    background_contrast: float = 1.0  # pattern strength: the second background colour is this far from the first
    background_regions: tuple[int, int] = (1, 1)  # regions with their own pattern per image (inclusive range)
    min_contrast: float = 0.2  # luma gap between an object and the background band
    noise: tuple[float, float] = (0.0, 0.05)  # std of per-pixel Gaussian noise, drawn per image

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in SHAPES]
        if unknown or len(set(self.categories)) != len(self.categories) or len(self.categories) < 2:
            raise ProbeValueError(
                f"WorldConfig.categories must be >= 2 distinct names from {SHAPES}; got {self.categories}"
            )
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if bad or not self.backgrounds:
            raise ProbeValueError(f"WorldConfig.backgrounds must be names from {BACKGROUNDS}; got {self.backgrounds}")
        if self.image_size < 16:
            raise ProbeValueError(f"WorldConfig.image_size must be >= 16; got {self.image_size}")
        if not 1 <= self.instances[0] <= self.instances[1]:
            raise ProbeValueError(f"WorldConfig.instances must be (lo, hi) with 1 <= lo <= hi; got {self.instances}")
        if self.second_instances is not None and not 1 <= self.second_instances[0] <= self.second_instances[1]:
            raise ProbeValueError(
                "WorldConfig.second_instances must be (lo, hi) with 1 <= lo <= hi, or None; "
                f"got {self.second_instances}"
            )
        if not 0 < self.radius[0] <= self.radius[1] < 0.5:
            raise ProbeValueError(f"WorldConfig.radius must be (lo, hi) with 0 < lo <= hi < 0.5; got {self.radius}")
        if not 1 <= self.background_regions[0] <= self.background_regions[1]:
            raise ProbeValueError(
                f"WorldConfig.background_regions must be (lo, hi) with 1 <= lo <= hi; got {self.background_regions}"
            )
        if not 0.0 <= self.two_category_fraction <= 1.0:
            raise ProbeValueError(
                f"WorldConfig.two_category_fraction must be in [0, 1]; got {self.two_category_fraction}"
            )

    @property
    def class_names(self) -> list[str]:
        """Category names in label order (sorted), as an image folder lists them."""
        return sorted(self.categories)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> WorldConfig:
        data = {"second_instances": None, **data}  # world.json files written before the field existed
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


@dataclass
class Sample:
    """One image of the world, its label image and what it holds."""

    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # uint8 [H, W]: 0 background, 1 + class index for that category's pixels
    categories: tuple[str, ...]  # present categories, largest object area first
    areas: dict[str, int]  # mask pixels per present category
    instances: dict[str, int] = field(default_factory=dict)
    background: str = ""  # pattern kind of the background (of its first region): independent of the categories

    @property
    def category(self) -> str:
        """The primary category: the one with the larger object area."""
        return self.categories[0]


def _outline(name: str) -> list[np.ndarray]:
    """Vertices of a shape at a nominal size (about unit radius), centred at 0.

    The first polygon is drawn filled; any further polygon is cut out of it (holes, bites).
    """
    t = lambda n, offset=0.0: offset + np.arange(n) * 2 * np.pi / n  # noqa: E731
    circle = lambda radius, dx=0.0: np.stack([dx + radius * np.cos(t(48)), radius * np.sin(t(48))], 1)  # noqa: E731
    if name == "disc":
        return [circle(1.0)]
    if name == "ring":
        return [circle(1.0), circle(0.5)]
    if name == "crescent":
        return [circle(1.0), circle(0.8, dx=0.55)]
    if name == "square":
        return [np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])]
    if name == "bar":
        return [np.array([[-1.0, -0.28], [1.0, -0.28], [1.0, 0.28], [-1.0, 0.28]])]
    if name == "triangle":
        a = t(3, -np.pi / 2)
        return [np.stack([np.cos(a), np.sin(a)], 1)]
    if name == "plus":
        w, L = 1 / 3, 1.0
        pts = [
            (-w, -L),
            (w, -L),
            (w, -w),
            (L, -w),
            (L, w),
            (w, w),
            (w, L),
            (-w, L),
            (-w, w),
            (-L, w),
            (-L, -w),
            (-w, -w),
        ]
        return [np.array(pts)]
    if name == "star":
        a = t(10, -np.pi / 2)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return [np.stack([radii * np.cos(a), radii * np.sin(a)], 1)]
    raise ProbeValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")


@functools.cache
def _unit_shape(name: str) -> tuple[tuple[np.ndarray, ...], float]:
    """Outline(s) of a shape scaled to the area of a unit disc (measured by drawing it), and its enclosing radius."""
    polys = _outline(name)
    side = 512
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for index, poly in enumerate(polys):
        draw.polygon(((poly + 1.5) * side / 3).ravel().tolist(), fill=255 if index == 0 else 0)
    area = (np.asarray(canvas) > 127).sum() * (3 / side) ** 2
    scale = math.sqrt(math.pi / area)
    scaled = tuple(p * scale for p in polys)
    return scaled, max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in scaled[:1])


def _extent(name: str, r: float) -> float:
    """Radius of the circle that encloses the shape (for placement)."""
    return _unit_shape(name)[1] * r


def _coverage(name: str, r: float, angle: float, cx: float, cy: float, box: tuple[int, int, int, int]) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one shape instance over the pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    s = _SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    draw = ImageDraw.Draw(canvas)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    for index, poly in enumerate(_unit_shape(name)[0]):
        pts = (r * poly @ rot.T + [cx - x0, cy - y0]) * s
        draw.polygon(pts.ravel().tolist(), fill=255 if index == 0 else 0)
    return np.asarray(canvas.reduce(s), dtype=np.float32) / 255.0


def _pattern(rng: np.random.Generator, cfg: WorldConfig, band_lo: float) -> tuple[np.ndarray, str]:
    """One background pattern [H, W, 3] of a random kind, between two colours whose luma lies in the band;
    and its kind."""
    size = cfg.image_size

    def colour() -> np.ndarray:
        candidates = rng.uniform(0, 1, (64, 3))
        luma = candidates @ _LUMA
        ok = np.flatnonzero((luma >= band_lo) & (luma <= band_lo + cfg.background_band))
        return candidates[ok[0]] if ok.size else np.full(3, band_lo + cfg.background_band / 2)

    a = colour()
    b = a + cfg.background_contrast * (colour() - a)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    theta = rng.uniform(0, 2 * np.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == "gradient":
        w = (u - u.min()) / (u.max() - u.min())
    elif kind == "blobs":
        cells = int(rng.integers(3, 7))
        grid = Image.fromarray((rng.uniform(0, 1, (cells, cells)) * 255).astype(np.uint8))
        w = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    elif kind == "stripes":
        period = rng.uniform(0.1, 0.3)
        w = 0.5 + 0.5 * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
    else:  # checker
        period = rng.uniform(0.15, 0.35)
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        w = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    return (a * (1 - w[..., None]) + b * w[..., None]).astype(np.float32), kind


def _background(rng: np.random.Generator, cfg: WorldConfig) -> tuple[np.ndarray, float, str]:
    """A background [H, W, 3] in [0, 1]; returns (image, low end of its luma band, kind of its first region).

    With several regions, each region has its own pattern and the regions blend smoothly
    (soft Voronoi cells), so different parts of one image share no background.
    """
    band_lo = float(rng.uniform(0.0, 1.0 - cfg.background_band))
    regions = int(rng.integers(cfg.background_regions[0], cfg.background_regions[1] + 1))
    patterns = [_pattern(rng, cfg, band_lo) for _ in range(regions)]
    layers, kind = np.stack([layer for layer, _ in patterns]), patterns[0][1]
    if regions == 1:
        return layers[0], band_lo, kind
    size = cfg.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    centres = rng.uniform(0, 1, (regions, 2))
    d2 = (xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2
    logits = -(d2 - d2.min(0, keepdims=True)) / 0.08  # soft edges, several pixels wide
    weights = np.exp(logits)
    weights /= weights.sum(0, keepdims=True)
    return (layers * weights[..., None]).sum(0).astype(np.float32), band_lo, kind


def _object_colour(rng: np.random.Generator, cfg: WorldConfig, band_lo: float) -> np.ndarray:
    """A random colour whose luma is at least ``min_contrast`` outside the background band."""
    lo_room = band_lo - cfg.min_contrast
    hi_room = band_lo + cfg.background_band + cfg.min_contrast
    sides = [s for s, ok in (("dark", lo_room > 0.02), ("bright", hi_room < 0.98)) if ok]
    side = sides[int(rng.integers(len(sides)))]
    candidates = rng.uniform(0, 1, (64, 3))
    luma = candidates @ _LUMA
    ok = np.flatnonzero(luma <= lo_room if side == "dark" else luma >= hi_room)
    if ok.size:
        return candidates[ok[0]]
    return np.zeros(3) if side == "dark" else np.ones(3)


def _draw_instances(
    rng: np.random.Generator, cfg: WorldConfig, todo: list[tuple[str, float]], required: int = 0
) -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    """Place (shape, radius) instances without touching each other; returns (shape, coverage, box) per instance.

    A candidate position is first screened with enclosing circles (allowed to overlap,
    since most shapes do not fill their circle), then checked on the drawn pixels against a
    one-pixel margin around the instances already placed. Instances that do not fit are dropped,
    except the first ``required`` ones, which shrink by 15 % per 60 failed tries until they fit.
    """
    size = cfg.image_size
    occupied = np.zeros((size + 2, size + 2), dtype=bool)  # padded by one pixel for the margin
    circles: list[tuple[float, float, float]] = []
    placed = []
    for index, (name, r) in enumerate(todo):
        angle = float(rng.uniform(0, 2 * np.pi))
        for attempt in range(600 if index < required else 60):
            if attempt and attempt % 60 == 0:
                r *= 0.85
            ext = _extent(name, r)
            cx, cy = rng.uniform(ext, size - ext, 2)
            if any(math.hypot(cx - px, cy - py) < 0.6 * (ext + pe) for px, py, pe in circles):
                continue
            x0, y0 = max(int(cx - ext) - 1, 0), max(int(cy - ext) - 1, 0)
            x1, y1 = min(int(math.ceil(cx + ext)) + 1, size), min(int(math.ceil(cy + ext)) + 1, size)
            cover = _coverage(name, r, angle, float(cx), float(cy), (x0, y0, x1, y1))
            if (occupied[y0 + 1 : y1 + 1, x0 + 1 : x1 + 1] & (cover > 0)).any():
                continue
            ys, xs = np.nonzero(cover > 0)
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    occupied[ys + y0 + dy, xs + x0 + dx] = True
            circles.append((float(cx), float(cy), ext))
            placed.append((name, cover, (x0, y0, x1, y1)))
            break
    return placed


def render(cfg: WorldConfig, seed: int, index: int) -> Sample:
    """Draw image ``index`` of the world ``seed``; it depends on nothing else."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    size = cfg.image_size
    names = cfg.class_names
    two = len(names) > 1 and rng.random() < cfg.two_category_fraction
    chosen = list(rng.choice(len(names), size=2 if two else 1, replace=False))
    todo = []
    for rank, cat in enumerate(chosen):
        lo, hi = cfg.second_instances if rank == 1 and cfg.second_instances is not None else cfg.instances
        for _ in range(int(rng.integers(lo, hi + 1))):
            todo.append((names[cat], float(rng.uniform(*cfg.radius)) * size))
    rng.shuffle(todo)  # interleave the categories so neither gets the leftover space
    # but one instance of each category goes first: a crowded image drops extra instances, never a category
    firsts = [next(i for i, (name, _) in enumerate(todo) if name == names[cat]) for cat in chosen]
    todo = [todo[i] for i in sorted(firsts)] + [item for i, item in enumerate(todo) if i not in firsts]
    img, band_lo, background = _background(rng, cfg)
    mask = np.zeros((size, size), dtype=np.uint8)
    counts: dict[str, int] = {}
    for name, cover, (x0, y0, x1, y1) in _draw_instances(rng, cfg, todo, required=len(chosen)):
        alpha = cover[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - alpha) + _object_colour(rng, cfg, band_lo) * alpha
        mask[y0:y1, x0:x1][cover >= 0.5] = names.index(name) + 1
        counts[name] = counts.get(name, 0) + 1
    img = img + rng.normal(0, rng.uniform(*cfg.noise), img.shape)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    areas = {name: int((mask == names.index(name) + 1).sum()) for name in counts}
    present = tuple(sorted(areas, key=lambda n: (-areas[n], n)))
    return Sample(image=image, mask=mask, categories=present, areas=areas, instances=counts, background=background)


def generate(cfg: WorldConfig, n: int, seed: int, start: int = 0) -> Iterator[Sample]:
    """Images ``start .. start+n-1`` of the world ``seed``."""
    for index in range(start, start + n):
        yield render(cfg, seed, index)


def render_arrays(
    cfg: WorldConfig,
    n: int,
    seed: int,
    start: int = 0,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Images, masks and primary labels of a slice of the world as stacked arrays.

    Returns ``images`` uint8 [N, H, W, 3], ``masks`` uint8 [N, H, W], ``labels`` int64 [N]
    (index into ``cfg.class_names``), ``n_categories`` int64 [N] and ``backgrounds`` int64 [N] (index of the
    background's pattern kind into :data:`BACKGROUNDS`, a label that says nothing about the categories). With
    ``cache_dir`` the arrays are kept in an ``.npz`` named by a hash of (config, seed, start, n, array names)
    and reused.
    """
    from tqdm import tqdm

    if cache_dir is not None:
        key = json.dumps([RENDERER, cfg.to_json(), int(seed), int(start), int(n), ARRAYS], sort_keys=True)
        path = Path(cache_dir) / f"world-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
        if path.exists():
            with np.load(path) as cached:
                return {k: cached[k] for k in cached.files}
        arrays = render_arrays(cfg, n, seed, start, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            # numpy's stub lets **kwds collide with savez's allow_pickle; the array names (ARRAYS) never do
            np.savez(tmp, **arrays)  # type: ignore[arg-type]
        return arrays

    size = cfg.image_size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    n_categories = np.empty(n, dtype=np.int64)
    kinds = np.empty(n, dtype=np.int64)
    names = cfg.class_names
    bar = tqdm(generate(cfg, n, seed, start), total=n, desc="world", unit="img", disable=not progress or n < 500)
    for i, sample in enumerate(bar):
        images[i], masks[i] = sample.image, sample.mask
        labels[i] = names.index(sample.category)
        n_categories[i] = len(sample.categories)
        kinds[i] = BACKGROUNDS.index(sample.background)
    return dict(zip(ARRAYS, (images, masks, labels, n_categories, kinds)))


def render_backgrounds(cfg: WorldConfig, n: int, seed: int) -> np.ndarray:
    """``n`` object-free backgrounds, uint8 [N, H, W, 3], drawn like the world's (for background-swapped views)."""
    out = np.empty((n, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(i), 1]))
        img, _, _ = _background(rng, cfg)
        img = img + rng.normal(0, rng.uniform(*cfg.noise), img.shape)
        out[i] = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return out


@dataclass
class WorldManifest:
    """What ``write_image_folder`` wrote: the config, seed, class names and one record per image."""

    root: Path
    config: WorldConfig
    seed: int
    n: int
    class_names: list[str]
    records: list[dict]
    renderer: int = RENDERER

    def to_json(self) -> dict:
        return {
            "format": "ssl-probe synthetic world",
            "version": 1,
            "renderer": self.renderer,
            "seed": self.seed,
            "n": self.n,
            "config": self.config.to_json(),
            "class_names": self.class_names,
            "mask_values": {name: i + 1 for i, name in enumerate(self.class_names)},
            "images": self.records,
        }

    @classmethod
    def read(cls, root: str | os.PathLike) -> WorldManifest:
        root = Path(root)
        try:
            data = json.loads((root / "world.json").read_text())
            return cls(
                root,
                WorldConfig.from_json(data["config"]),
                int(data["seed"]),
                int(data["n"]),
                list(data["class_names"]),
                list(data["images"]),
                int(data.get("renderer", 1)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProbeValueError(f"{root / 'world.json'} is not a readable world manifest: {exc}") from exc


def write_image_folder(
    root: str | os.PathLike, n: int, seed: int, cfg: WorldConfig | None = None, progress: bool = True
) -> WorldManifest:
    """Write ``n`` world images as ``images/<category>/<name>.png`` plus ``masks/`` and ``world.json``.

    The folder is the image's primary category (larger object area). The directory is built
    under a temporary name and renamed into place, so ``root`` is either complete or absent.
    If ``root`` already holds the same world (config, seed, n, renderer), it is reused as is.
    """
    from tqdm import tqdm

    cfg = cfg or WorldConfig()
    root = Path(root)
    if (root / "world.json").exists():
        existing = WorldManifest.read(root)
        if existing.config == cfg and existing.seed == seed and existing.n == n and existing.renderer == RENDERER:
            return existing
        raise ProbeValueError(
            f"{root} already holds a different world (seed {existing.seed}, n {existing.n}, config or "
            f"renderer {existing.renderer} vs {RENDERER}); delete it or choose another directory"
        )
    if root.exists() and any(root.iterdir()):
        raise ProbeValueError(f"{root} exists and is not empty; choose an empty or new directory for the world")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        names = cfg.class_names
        for sub in ("images", "masks"):
            for name in names:
                (tmp / sub / name).mkdir(parents=True)
        records = []
        width = len(str(max(n - 1, 0)))
        bar = tqdm(generate(cfg, n, seed), total=n, desc="world", unit="img", disable=not progress)
        for i, sample in enumerate(bar):
            stem = f"{i:0{width}d}"
            rel = f"{sample.category}/{stem}.png"
            Image.fromarray(sample.image).save(tmp / "images" / rel, compress_level=1)
            Image.fromarray(sample.mask).save(tmp / "masks" / rel, compress_level=1)
            records.append(
                {
                    "image": f"images/{rel}",
                    "mask": f"masks/{rel}",
                    "categories": list(sample.categories),
                    "areas": sample.areas,
                    "instances": sample.instances,
                }
            )
        manifest = WorldManifest(root, cfg, int(seed), int(n), names, records)
        (tmp / "world.json").write_text(json.dumps(manifest.to_json(), indent=1) + "\n")
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest

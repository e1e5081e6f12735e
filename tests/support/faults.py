"""Builders for the fault battery: a micro shape world seeded with awkward files, hostile checkpoints,
and ``python -m probe`` children that count the feature rows they compute."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import torch
from PIL import Image

from probe.bench.pipeline import write_shapes
from tests.support.cli import REPO, child_env
from tests.support.shapes import probe_run, write_checkpoints

COUNTING_RUN = Path(__file__).with_name("counting_run.py")
#: A name with a space, non-ASCII letters and HTML/quote characters; it must reach the report escaped.
HOSTILE_STEM = "ümlaut café <img src=x onerror=alert(1)> & 'q'"
#: Files of the micro world that are not usable images, and the reason each one is skipped for.
BROKEN = {
    "circle/empty.png": "empty file",
    f"circle/{HOSTILE_STEM}.jpg": "not an image",
    "square/cut.png": "cannot decode",
    "square/huge.png": "too large",
}
#: Cheap settings for every run of the battery.
FAST = (
    "--k",
    "2",
    "--method",
    "agf",
    "--baselines",
    "saliency",
    "--eval-images",
    "4",
    "--device",
    "cpu",
    "--batch-size",
    "2",
    "--seed",
    "3",
)


def huge_png(path: Path, side: int = 10_000) -> Path:
    """A valid ``side`` x ``side`` one-bit PNG of a few kilobytes, written row by row (never ``side**2`` bytes
    in memory): decoding it would need ``side**2`` bytes as 8-bit grey, 300 MB as RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def make_micro_world(root: Path) -> tuple[Path, Path]:
    """(images, masks): 2 shapes x (5 + 1 two-object) 32 px images plus, in the same folders, a 1x1 image,
    a 16-bit, a palette, a CMYK, an RGBA and an EXIF-rotated image, one image and one broken file with
    :data:`HOSTILE_STEM` names, one mask at half size, and the other :data:`BROKEN` files."""
    images, masks = write_shapes(root, {"circle": 5, "square": 5}, size=32, seed=0, two_object=1)
    for folder in (images, masks):
        os.replace(folder / "circle" / "circle_001.png", folder / "circle" / f"{HOSTILE_STEM}.png")
    with Image.open(masks / "square" / "square_001.png") as mask:
        mask.resize((16, 16), Image.Resampling.NEAREST).save(masks / "square" / "square_001.png")
    odd = {
        "circle/one pixel.png": Image.new("RGB", (1, 1), (200, 40, 40)),
        "circle/deep16.png": Image.new("I;16", (32, 32), 40000),
        "square/palette.png": Image.new("RGB", (32, 32), (30, 200, 30)).convert("P"),
        "square/cmyk.jpg": Image.new("CMYK", (32, 32), (0, 255, 255, 0)),
        "square/rgba.png": Image.new("RGBA", (32, 32), (10, 20, 200, 128)),
    }
    for rel, image in odd.items():
        image.save(images / rel)
        Image.new("L", image.size, 0).save((masks / rel).with_suffix(".png"))
    rotated = Image.new("RGB", (32, 16), (250, 250, 250))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(images / "circle" / "rotated.jpg", exif=exif)
    Image.new("L", (16, 32), 0).save(masks / "circle" / "rotated.png")  # the mask is drawn upright
    (images / "circle" / "empty.png").write_bytes(b"")
    (images / "circle" / f"{HOSTILE_STEM}.jpg").write_text("not a picture <script>\n")
    whole = (images / "square" / "square_002.png").read_bytes()
    (images / "square" / "cut.png").write_bytes(whole[: len(whole) // 2])
    huge_png(images / "square" / "huge.png")
    return images, masks


def run_args(weights: Path, world: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    """``probe run`` arguments for ``weights`` on ``world`` = (images, masks) with the battery's cheap settings."""
    return probe_run(weights, world, out, *FAST, *extra)


def moco_checkpoint(directory: Path) -> Path:
    return write_checkpoints(directory)["moco_v2"]


def counting_run(*args: str, pause_at_rows: int = 0, **popen: object) -> subprocess.Popen:
    """Start ``python -m probe ARGS`` in a child that prints ``rows N`` after each extracted batch
    (N: feature rows computed so far) and ``total rows N`` at exit. With ``pause_at_rows`` it stops
    mid-extraction once N reaches it, until a line arrives on its stdin (a pipe) or the pipe closes."""
    if pause_at_rows:
        popen.setdefault("stdin", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, str(COUNTING_RUN), *args],
        env=child_env(FAULTS_PAUSE_AT_ROWS=str(pause_at_rows)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        **popen,
    )


def total_rows(stdout: str) -> int:
    return int([line for line in stdout.splitlines() if line.startswith("total rows ")][-1].split()[-1])


def nan_checkpoint(path: Path) -> Path:
    state = torch.load(write_checkpoints(path.parent / "nan-src")["supervised"], weights_only=True)
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, path)
    return path

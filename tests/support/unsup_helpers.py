"""Test helpers for the unsupervised package: a real (random-init) backbone meeting the Backbone contract,
and seeded image folders. Imported by conftest.py and by the torchrun worker script."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms as T
from PIL import Image

import backbones

WORKER = Path(__file__).with_name("extract_worker.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Source:
    path: str
    sha256: str


class StandInBackbone(nn.Module):
    """``backbones.create("resnet_small")`` with seeded weights and the Backbone attributes.

    ``forward_calls`` counts forwards; ``fail_after`` makes the forward raise after that
    many calls (a simulated crash in the middle of an extraction).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.model = backbones.create("resnet_small")
        self.feature_dim = 128
        self.arch = "resnet_small"
        self.format = "standin"
        self.mean, self.std = backbones.IMAGENET.mean, backbones.IMAGENET.std
        self.input_size = 64
        self.preprocess = T.Compose([T.Resize(72), T.CenterCrop(64), T.ToTensor(), T.Normalize(self.mean, self.std)])
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
        self.source = Source(path=f"<resnet_small seed {seed}>", sha256=digest.hexdigest())
        self.forward_calls = 0
        self.fail_after: int | None = None
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.forward_calls >= self.fail_after:
            raise RuntimeError("simulated crash in the middle of extraction")
        self.forward_calls += 1
        return self.model(x)


def random_image(rng: np.random.Generator, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A blocky random RGB image (width, height) that survives JPEG reasonably."""
    w, h = size
    blocks = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    return Image.fromarray(pixels, mode="RGB")


def make_folder(
    root: Path, classes: dict[str, int] | None, *, seed: int = 0, ext: str = ".png", flat_count: int = 0
) -> Path:
    """Write ``classes`` = {name: count} images in ImageFolder layout (or ``flat_count`` flat images)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (classes or {}).items():
        (root / name).mkdir(exist_ok=True)
        for i in range(count):
            size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
            random_image(rng, size).save(root / name / f"img{i:03d}{ext}")
    for i in range(flat_count):
        random_image(rng, (int(rng.integers(40, 90)), int(rng.integers(40, 90)))).save(root / f"img{i:03d}{ext}")
    return root


def worker_command(*args: str, torchrun_processes: int | None = None) -> tuple[list[str], dict[str, str]]:
    """Command line and environment running ``extract_worker.py ARGS`` (under torchrun if asked) on this checkout."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        PROBE_NO_PROGRESS="1",
    )
    launcher = [sys.executable]
    if torchrun_processes is not None:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun_processes}"]
    return launcher + [str(WORKER), *args], env

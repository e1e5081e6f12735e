"""Bad checkpoints and bad data folders through `probe run`: exit 2, one line naming the file, no code
from the file runs, nothing written that looks like a result, and run.log says why the run ended."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

import backbones
from probe.cli import main
from tests.support.faults import huge_png, nan_checkpoint, run_args
from tests.support.shapes import small_state
from unsupervised.images import UnreadableImage, open_rgb, read_header

RESULTS = ("report.html", "metrics.json", "timings.json", "figures")


class WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: the side effect a malicious checkpoint would have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _fails_cleanly(argv: list[str], out: Path, capsys, *expected: str) -> str:
    """``probe ARGV`` exits 2 with one stderr line holding ``expected``; no result files in ``out``."""
    code = main(argv)
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for text in expected:
        assert text in stderr, stderr
    assert not any((out / name).exists() for name in RESULTS)
    return stderr


def _bad_checkpoint(kind: str, directory: Path) -> tuple[Path, str]:
    """A checkpoint file of ``kind`` and a phrase of the error it must give (which names the file)."""
    path = directory / f"{kind}.pth"
    state = small_state(0)
    if kind == "payload":
        torch.save({"state_dict": state, "extra": WritesMarker(directory / "pwned")}, path)
        return path, "refused"
    if kind == "truncated":
        torch.save(state, path)
        path.write_bytes(path.read_bytes()[:5000])
        return path, "truncated or corrupt"
    if kind == "empty":
        path.write_bytes(b"")
        return path, "is empty"
    if kind == "random":
        path.write_bytes(b"\x01" + random.Random(1).randbytes(5000))
        return path, "not a checkpoint ssl-probe can read"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes/readme.txt", "hello")
        return path, path.name
    if kind == "other-arch":  # resnet_small weights, loaded with --arch resnet18 (see the test)
        torch.save(state, path)
        return path, "shape mismatch"
    if kind == "prefix":
        torch.save({"state_dict": {f"module.encoder_q.module.{k}": v for k, v in state.items()}}, path)
        return path, "leftover prefix 'module.'"
    if kind == "nan":
        return nan_checkpoint(path), "contain NaN or inf: layer1.0.conv1.weight"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["payload", "truncated", "empty", "random", "zip", "other-arch", "prefix", "nan"])
def test_bad_checkpoints_are_refused_before_any_result(kind, micro_world, tmp_path, capsys):
    path, phrase = _bad_checkpoint(kind, tmp_path)
    out = tmp_path / "out"
    extra = {"other-arch": ["--arch", "resnet18"], "prefix": ["--arch", "resnet_small"]}.get(kind, [])
    _fails_cleanly(run_args(path, micro_world, out, *extra), out, capsys, str(path), phrase)
    assert not (tmp_path / "pwned").exists()  # the payload never ran
    assert "run failed: " in (out / "run.log").read_text()


def test_finite_weights_with_non_finite_features_give_no_numbers(micro_world, tmp_path, capsys):
    """Weights that pass the load-time noise probe but overflow to inf on the real images: the run stops
    at extraction naming the images, and no metric is reported."""
    state = small_state(0)
    state["conv1.weight"] *= 1e37
    path = tmp_path / "overflow.pth"
    torch.save(state, path)
    out = tmp_path / "out"
    _fails_cleanly(
        run_args(path, micro_world, out), out, capsys, "the backbone produced NaN/inf features for", str(micro_world[0])
    )


def _folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        torchvision.transforms.functional.to_pil_image(
            torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(i))
        ).save(root / f"img {i}.png")
    return root


def test_empty_folder_one_image_and_fewer_images_than_k(weights, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    for data, k, phrase in (
        (empty, "2", "no usable images in"),
        (_folder(tmp_path / "one", 1), "2", "larger than"),
        (_folder(tmp_path / "three", 3), "5", "--k 5 is larger than the number of images (3)"),
    ):
        out = tmp_path / f"out-{data.name}"
        argv = ["run", "--weights", str(weights), "--data", str(data), "--k", k, "--out", str(out), "--device", "cpu"]
        _fails_cleanly(argv, out, capsys, str(data), phrase)
    missing = tmp_path / "missing"
    _fails_cleanly(
        ["run", "--weights", str(weights), "--data", str(missing), "--k", "2", "--out", str(tmp_path / "o")],
        tmp_path / "o",
        capsys,
        str(missing),
        "does not exist",
    )


def test_masks_that_match_no_image_or_do_not_exist(weights, micro_world, tmp_path, capsys):
    images, _ = micro_world
    other = _folder(tmp_path / "other-masks", 2)
    out = tmp_path / "out"
    _fails_cleanly(
        run_args(weights, (images, other), out),
        out,
        capsys,
        str(other),
        "has no mask for any of the",
        "masks mirror the image paths",
    )
    missing = tmp_path / "no-masks"
    _fails_cleanly(run_args(weights, (images, missing), out), out, capsys, str(missing), "does not exist")


def test_a_10000_pixel_square_image_is_refused_from_its_header(tmp_path):
    """10,000 x 10,000 is past PIL's decompression-bomb limit (89.5 Mpx): the file is skipped with that reason
    after reading its header only, so no 100 MB (grey) or 300 MB (RGB) buffer is ever allocated."""
    path = huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 200_000
    for reader in (read_header, open_rgb):  # PIL warns (the probe command silences it), then the reason is raised
        with (
            pytest.warns(Image.DecompressionBombWarning),
            pytest.raises(
                UnreadableImage, match=r"too large: 10000x10000 pixels exceeds PIL's decompression-bomb limit"
            ),
        ):
            reader(path)


def test_a_one_pixel_image_becomes_a_full_size_input(weights, tmp_path):
    backbone = backbones.load(weights)
    dot = tmp_path / "dot.png"
    torchvision.transforms.functional.to_pil_image(torch.ones(3, 1, 1)).save(dot)
    tensor = backbone.preprocess(open_rgb(dot))
    assert tensor.shape == (3, backbone.input_size, backbone.input_size) and torch.isfinite(tensor).all()

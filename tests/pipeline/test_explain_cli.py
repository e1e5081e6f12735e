"""`probe explain`: one image, the requested pseudo-class, an overlay PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from probe import explain
from probe.cli import main
from probe.pipeline import load_probe_model
from probe.pipeline.images import unnormalise
from probe.report.figures import overlay

pytestmark = pytest.mark.slow


def _expected_overlay(out, image, target: int) -> np.ndarray:
    saved = load_probe_model(out, device="cpu")
    x = saved.model.preprocess(Image.open(image)).unsqueeze(0)
    relevance = explain(saved.model, x, torch.tensor([target]), method="agf")[0].detach()
    return overlay(unnormalise(x, normalization=saved.normalization)[0], relevance.numpy()).astype(int)


def _explained(stdout: str) -> int:
    return int(next(line for line in stdout.splitlines() if "<- explained" in line).split()[0])


def _classes_by_probability(stdout: str) -> list[int]:
    rows = [line.split() for line in stdout.splitlines()[1:] if line.strip() and not line.startswith("overlay")]
    return [int(row[0]) for row in rows]


def test_explain_writes_the_overlay_of_the_requested_pseudo_class(run_dir, world, run_cli, tmp_path):
    out, _ = run_dir
    image = next((world[0] / "square").glob("*.png"))
    done = run_cli(
        "explain",
        "--run",
        str(out),
        "--image",
        str(image),
        "--pseudo-class",
        "1",
        "--out",
        str(tmp_path / "x.png"),
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    assert _explained(done.stdout) == 1 and sorted(_classes_by_probability(done.stdout)) == [0, 1, 2]
    written = np.asarray(Image.open(tmp_path / "x.png").convert("RGB")).astype(int)
    assert written.shape == (64, 64, 3)
    assert np.abs(written - _expected_overlay(out, image, 1)).max() <= 1
    other = min(np.abs(written - _expected_overlay(out, image, c)).mean() for c in (0, 2))
    assert other > 1.0  # another pseudo-class's map would look different


def test_explain_rank_picks_the_next_most_probable_class_and_names_the_file(run_dir, world, run_cli, tmp_path):
    out, _ = run_dir
    image = next((world[0] / "circle").glob("*.png"))
    done = run_cli("explain", "--run", str(out), "--image", str(image), "--rank", "1", "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    order = _classes_by_probability(done.stdout)
    assert _explained(done.stdout) == order[1]
    assert (tmp_path / f"{image.stem}.agf.pc{order[1]}.png").is_file()


def test_explain_errors_are_one_line(run_dir, world, checkpoints, capsys):
    out, _ = run_dir
    image = str(next((world[0] / "circle").glob("*.png")))
    cases = [
        (["--weights", str(checkpoints["moco_v2"])], "probe run"),  # no --run: pseudo-classes come from `probe run`
        (["--run", str(out), "--pseudo-class", "7"], "k=3"),
        (["--run", str(out), "--rank", "3"], "0..2"),
        (["--run", str(out), "--weights", str(checkpoints["byol"])], "sha256"),
        (["--run", str(out), "--method", "nope"], "valid: agf"),
        (["--run", str(out.parent)], "not the output of `probe run`"),
    ]
    for extra, expected in cases:
        assert main(["explain", "--image", image, "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (extra, err)

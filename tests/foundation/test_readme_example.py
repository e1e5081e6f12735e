"""The README's Python blocks run as written, on a generated checkpoint, image folder and masks.

The examples name only ``my_checkpoint.pth``, ``my_images/`` and ``my_masks/`` (and write
``cache/`` and ``my_run/``); the test creates those in a temporary folder and runs there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import backbones
from backbones import registry
from probe.bench.pipeline import write_shapes
from probe.pipeline.methods import arch_defaults
from probe.report import validate_metrics

README = Path(__file__).resolve().parents[2] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SIZE = 64


def python_blocks() -> list[str]:
    return PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))


def example_blocks() -> list[str]:
    """The blocks that run on the user's checkpoint (the rest, e.g. the plugin block, define things)."""
    return [block for block in python_blocks() if "my_checkpoint.pth" in block]


def run_block(block: str, index: int) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    return namespace


@pytest.fixture
def user_files(tmp_path, monkeypatch) -> Path:
    """A resnet_small checkpoint (plain state dict, random weights) and a 3-category shape world with masks."""
    with torch.random.fork_rng():
        torch.manual_seed(1)  # not the control's seed: the probed weights differ from random_like(seed=0)
        torch.save(backbones.create("resnet_small").state_dict(), tmp_path / "my_checkpoint.pth")
    images, masks = write_shapes(tmp_path, {"circle": 4, "square": 4, "triangle": 4}, size=SIZE, seed=0, two_object=1)
    images.rename(tmp_path / "my_images")
    masks.rename(tmp_path / "my_masks")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_a_step_by_step_and_a_whole_job_example():
    blocks = example_blocks()
    assert len(blocks) == 2, f"expected 2 python blocks using my_checkpoint.pth in {README}, found {len(blocks)}"
    assert "probe.explain(" in blocks[0] and "run_probe(" in blocks[1]


def test_readme_examples_run_on_a_generated_checkpoint_and_folder(user_files, capsys):
    step_by_step, whole_job = example_blocks()

    first = run_block(step_by_step, 1)
    maps, pseudo = first["maps"], first["pseudo"]
    assert pseudo.k == 3 and len(pseudo.labels) == 15
    assert maps.shape == (4, SIZE, SIZE) and torch.isfinite(maps).all() and maps.abs().sum() > 0

    second = run_block(whole_job, 2)
    run = user_files / "my_run"
    assert (run / "report.html").is_file() and (run / "figures").is_dir()
    metrics = json.loads((run / "metrics.json").read_text())
    validate_metrics(metrics)
    assert [b["name"] for b in metrics["backbones"]] == ["my_checkpoint", "random-init control"]
    assert metrics["backbones"][0]["clustering"]["nmi"] is not None  # folder labels were used
    assert metrics["backbones"][0]["attribution"]["agf"]["mask_energy"] is not None  # masks were used
    assert second["results"].backbone("my_checkpoint").clustering.k == 3
    printed = capsys.readouterr().out
    assert "Clustering(k=3" in printed


def test_readme_plugin_example_registers_an_architecture(monkeypatch):
    monkeypatch.setattr(registry, "_ARCHS", dict(registry._ARCHS))  # leave the real registry untouched
    plugin = [block for block in python_blocks() if "@backbones.register(" in block]
    assert len(plugin) == 1
    run_block(plugin[0], 0)
    spec = backbones.get_arch("my_net")
    assert spec.input_size == 96
    with torch.no_grad():
        assert backbones.create("my_net")(torch.zeros(2, 3, 96, 96)).shape == (2, 64)
    assert arch_defaults("my_net").method == "agf"  # the attribution package finds a CNN AGF can explain

"""A method that an installed plugin declares under the ``probe.methods`` entry point is accepted
by ``probe run --method`` and explained, evaluated and reported like a built-in one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.method_plugin import write_plugin_distribution
from tests.support.shapes import run_args

pytestmark = pytest.mark.slow


def test_probe_run_explains_with_a_plugin_method(world, checkpoints, tmp_path):
    env = {**write_plugin_distribution(tmp_path / "site"), "PROBE_NO_PROGRESS": "1"}
    out = tmp_path / "out"
    args = run_args(checkpoints["moco_v2"], world, out, "--method", "plugin_gradient")
    done = subprocess.run([sys.executable, "-m", "probe", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [b["method"] for b in metrics["backbones"]] == ["plugin_gradient", "plugin_gradient"]
    for backbone in metrics["backbones"]:
        figures = backbone["attribution"]["plugin_gradient"]
        # the control is explained with the primary method only: its figures are compared with that one
        expected = {"plugin_gradient", "gradcam"} if backbone["role"] == "probe" else {"plugin_gradient"}
        assert set(backbone["attribution"]) == expected
        assert figures["mask_energy"] is not None and figures["positive_perturbation_auc"] is not None
    assert metrics["backbones"][0]["attribution"]["plugin_gradient"]["sanity"] is not None

    unknown = subprocess.run(
        [sys.executable, "-m", "probe", *run_args(checkpoints["moco_v2"], world, out, "--method", "plugin_gradiant")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert unknown.returncode == 2 and "valid: agf, gradcam" in unknown.stderr and "plugin_gradient" in unknown.stderr

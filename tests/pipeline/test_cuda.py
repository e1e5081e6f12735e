"""`probe run` on CUDA gives the CPU run's pseudo-classes (skipped without a GPU)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from probe.pipeline import load_probe_model, run_probe
from probe.pipeline.options import EVAL_ROUND
from probe.report import validate_metrics

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_run_on_cuda_matches_the_cpu_run(run_dir, world, checkpoints, tmp_path):
    images, masks = world
    run_probe(
        checkpoints["moco_v2"],
        data=images,
        masks=masks,
        k=3,
        out=tmp_path,
        baselines=("gradcam",),
        eval_images=24,
        batch_size=32,
        device="cuda",
    )
    on_gpu, on_cpu = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, run_dir[0]))
    validate_metrics(on_gpu)
    for gpu, cpu in zip(on_gpu["backbones"], on_cpu["backbones"]):
        assert [pc["size"] for pc in gpu["pseudo_classes"]] == [pc["size"] for pc in cpu["pseudo_classes"]]
        assert gpu["clustering"]["nmi"]["value"] == pytest.approx(cpu["clustering"]["nmi"]["value"], abs=1e-6)
    sized = [int(m) for m in re.findall(r"explanation batch of (\d+) images", (tmp_path / "run.log").read_text())]
    assert sized and all(1 <= b <= EVAL_ROUND for b in sized)  # sized to the GPU, at most one round
    model = load_probe_model(tmp_path, device="cuda").model
    assert next(model.parameters()).is_cuda

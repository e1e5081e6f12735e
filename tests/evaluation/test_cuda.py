"""The metrics give the same numbers on CUDA as on the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from backbones.preprocessing import RAW
from probe.evaluation import average_precision, average_ranks, evaluate_maps, segmentation_counts
from tests.support.models import small_cnn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_metrics_agree_between_cpu_and_cuda():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=g)
    maps = torch.randn(6, 16, 16, generator=g)
    masks = torch.rand(6, 16, 16, generator=g) > 0.6
    model = small_cnn(classes=3)
    target = model(images).argmax(dim=1).detach()
    cpu = evaluate_maps(model, images, maps, target, normalization=RAW, masks=masks, batch_size=4)
    gpu = evaluate_maps(
        model.cuda(), images.cuda(), maps.cuda(), target.cuda(), normalization=RAW, masks=masks.cuda(), batch_size=4
    )
    assert torch.equal(cpu.faithfulness.positive.hits, gpu.faithfulness.positive.hits)
    for key, value in cpu.overall().items():
        assert gpu.overall()[key] == pytest.approx(value, nan_ok=True)
    assert torch.allclose(average_ranks(maps.flatten(1)), average_ranks(maps.cuda().flatten(1)).cpu())
    assert torch.allclose(average_precision(maps, masks), average_precision(maps.cuda(), masks.cuda()).cpu())
    on_cpu, on_gpu = segmentation_counts(maps, masks), segmentation_counts(maps.cuda(), masks.cuda())
    assert (on_cpu.correct, on_cpu.intersection, on_cpu.union) == (on_gpu.correct, on_gpu.intersection, on_gpu.union)
    for key, value in on_cpu.scores().items():
        assert on_gpu.scores()[key] == pytest.approx(value)

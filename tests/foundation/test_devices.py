"""The one reader of device names and the one model-device lookup (probe.devices)."""

from __future__ import annotations

import pytest
import torch

from probe.devices import batch_for_memory, model_device, resolve_device, to_device
from probe.errors import ParameterError


def test_auto_is_cuda_when_present_else_cpu():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_device_names_are_errors_naming_the_parameter():
    with pytest.raises(ParameterError, match=r"^device 'tpu': expected cpu, cuda, cuda:N or auto") as caught:
        resolve_device("tpu")
    assert caught.value.parameter == "device"
    with pytest.raises(ParameterError, match=r"^target_device 'gpu0'"):
        resolve_device("gpu0", parameter="target_device")


def test_absent_or_missing_cuda_devices_are_refused():
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        assert resolve_device("cuda:0") == torch.device("cuda:0")
        with pytest.raises(ParameterError, match=f"has {count} CUDA device"):
            resolve_device(f"cuda:{count}")
    else:
        with pytest.raises(ParameterError, match="CUDA is not available"):
            resolve_device("cuda")


def test_model_device_looks_at_parameters_then_buffers_then_the_default():
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    with_buffer = torch.nn.BatchNorm1d(2, affine=False, device="meta")  # buffers only
    assert list(with_buffer.parameters()) == [] and model_device(with_buffer) == torch.device("meta")
    empty = torch.nn.ReLU()
    assert model_device(empty) == torch.device("cpu")
    assert model_device(empty, torch.device("meta")) == torch.device("meta")
    assert model_device(torch.nn.Linear(2, 2, device="meta")) == torch.device("meta")


def test_batch_for_memory_fits_the_share_of_free_memory_within_bounds():
    gib, mib = 2**30, 2**20
    assert batch_for_memory(10 * gib, 100 * mib) == 71  # 0.7 * 10 GiB / 100 MiB = 71.68
    assert batch_for_memory(10 * gib, 100 * mib, share=0.5) == 51
    assert batch_for_memory(140 * gib, 1 * mib, most=32) == 32  # capped
    assert batch_for_memory(50 * mib, 100 * mib) == 1  # never below one image
    assert batch_for_memory(gib, 0) == 1024  # nothing measured: the cap
    with pytest.raises(ValueError, match="batch_for_memory: bad arguments"):
        batch_for_memory(gib, mib, share=0)


def test_to_device_keeps_values_and_lands_on_the_device():
    x = torch.arange(12.0).reshape(3, 4)
    moved = to_device(x, "cpu")
    assert moved.device.type == "cpu" and torch.equal(moved, x)
    if torch.cuda.is_available():
        on_gpu = to_device(x, "cuda")
        assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), x)

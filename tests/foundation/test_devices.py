"""The one reader of device names and the one model-device lookup (probe.devices)."""

from __future__ import annotations

import pytest
import torch

from probe.devices import model_device, resolve_device
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

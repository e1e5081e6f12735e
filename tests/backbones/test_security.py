"""The reader never runs code from a file: crafted pickles are refused before they act, bad files fail clearly."""

from __future__ import annotations

import argparse
import pickle
import random
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

import backbones
from backbones import BackboneWarning, CheckpointError, UnsafeCheckpointError
from backbones.archs.small_resnet import SmallResNet
from tests.support.layouts import assert_same_features, mlp_head, save, state

REPO = Path(__file__).resolve().parents[2]


class CreatesFile:
    """Unpickling this object opens (creates) ``path`` for writing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def fake_global(monkeypatch, module: str, name: str, obj=None):
    """Make ``module.name`` importable (pickle checks it when writing a reference) and return the object."""
    if obj is None:

        def obj(*args, **kwargs):
            return None

    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):  # every parent package must be importable too
        dotted = ".".join(parts[:depth])
        if dotted not in sys.modules:
            monkeypatch.setitem(sys.modules, dotted, types.ModuleType(dotted))
        if depth > 1:
            monkeypatch.setattr(
                sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], sys.modules[dotted], raising=False
            )
    monkeypatch.setattr(sys.modules[module], name, obj, raising=False)
    return obj


def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return state(SmallResNet().eval())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_payload_that_would_create_a_file_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save(
        {"state_dict": small_state(), "extra": CreatesFile(marker)}, path, _use_new_zipfile_serialization=zip_format
    )
    for attempt in (backbones.load, backbones.inspect):
        with pytest.raises(UnsafeCheckpointError) as info:
            attempt(path)
        message = str(info.value)
        assert str(path) in message and "io.open" in message and "scripts/convert_checkpoint.py" in message
    assert not marker.exists()


def test_plain_pickle_payload_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"params": small_state(), "x": CreatesFile(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="plain Python pickle"):
        backbones.load(path)
    assert not marker.exists()


def test_byol_jax_dill_pickle_is_refused_with_a_conversion_hint(tmp_path, monkeypatch):
    make_tuple = fake_global(monkeypatch, "dill._dill", "_create_namedtuple")
    reconstruct = fake_global(monkeypatch, "jax._src.array", "_reconstruct_array")

    class HaikuState:
        def __reduce__(self):
            return (make_tuple, ("_ByolExperimentState", ("online_params", "target_params"), "byol.byol_experiment"))

    class JaxArray:
        def __reduce__(self):
            return (reconstruct, ((2,), "uint32"))

    marker = tmp_path / "pwned.txt"
    data = {"experiment_state": HaikuState(), "step": 5004, "rng": JaxArray(), "x": CreatesFile(marker)}
    path = tmp_path / "pretrain_res50x1.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(UnsafeCheckpointError) as info:
        backbones.load(path)
    message = str(info.value)
    for expected in (str(path), "dill._dill", "jax._src.array", "'experiment_state'", "BYOL JAX/Haiku", "byol-convert"):
        assert expected in message
    assert not marker.exists()


def test_namespace_is_allowed_but_other_classes_are_not(tmp_path, monkeypatch):
    allowed = save(
        {"state_dict": small_state(), "args": argparse.Namespace(lr=0.1, arch="resnet_small")}, tmp_path / "ns.pth"
    )
    assert backbones.load(allowed).arch == "resnet_small"

    class TrainConfig:
        pass

    fake_global(monkeypatch, "my_project.config", "TrainConfig", TrainConfig)
    refused = save({"state_dict": small_state(), "config": TrainConfig()}, tmp_path / "custom.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"my_project\.config\.TrainConfig"):
        backbones.load(refused)


def test_omegaconf_hyper_parameters_are_refused_with_a_hint(tmp_path, monkeypatch):
    class DictConfig(dict):
        pass

    fake_global(monkeypatch, "omegaconf.dictconfig", "DictConfig", DictConfig)
    obj = {
        "state_dict": {"backbone." + k: v for k, v in small_state().items()},
        "pytorch-lightning_version": "2.0",
        "hyper_parameters": DictConfig(lr=1),
    }
    path = save(obj, tmp_path / "lightning.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="omegaconf config objects"):
        backbones.load(path)


def vicreg_full(tmp_path: Path, filter_fn, name: str = "resnet50_fullckpt.pth") -> Path:
    torch.manual_seed(3)
    model = SmallResNet().eval()
    sd = state(model, "module.backbone.")
    sd.update(mlp_head("module.projector.", [128, 256, 256], bn=True, seed=4))
    group = {
        "lr": 0.0,
        "weight_decay": 1e-6,
        "momentum": 0.9,
        "eta": 0.001,
        "weight_decay_filter": filter_fn,
        "lars_adaptation_filter": filter_fn,
        "params": [0, 1],
    }
    save({"epoch": 100, "model": sd, "optimizer": {"state": {}, "param_groups": [group]}}, tmp_path / name)
    return tmp_path / name, model


@pytest.mark.parametrize("module", ["main_vicreg", "__main__"])
def test_vicreg_full_checkpoint_loads_its_model(tmp_path, monkeypatch, module):
    fn = fake_global(monkeypatch, module, "exclude_bias_and_norm")
    path, model = vicreg_full(tmp_path, fn)
    backbone = backbones.load(path)
    assert backbone.format == "vicreg"
    assert_same_features(backbone, model, 64)


def test_any_other_function_in_the_optimizer_is_refused(tmp_path, monkeypatch):
    fn = fake_global(monkeypatch, "train", "my_filter")
    path, _ = vicreg_full(tmp_path, fn)
    with pytest.raises(UnsafeCheckpointError, match=r"train\.my_filter.*convert_checkpoint\.py"):
        backbones.load(path)


def test_calling_the_allowlisted_vicreg_filter_while_loading_is_refused(tmp_path, monkeypatch):
    fn = fake_global(monkeypatch, "main_vicreg", "exclude_bias_and_norm")

    class CallsIt:
        def __reduce__(self):
            return (fn, (torch.zeros(1),))

    path = save({"model": {"module.backbone.x": torch.zeros(1)}, "call": CallsIt()}, tmp_path / "sneaky.pth")
    with pytest.raises(UnsafeCheckpointError, match="tried to call"):
        backbones.load(path)


def test_conversion_script_makes_a_refused_file_loadable(tmp_path, monkeypatch):
    fn = fake_global(monkeypatch, "train", "my_filter")
    path, model = vicreg_full(tmp_path, fn)
    out = tmp_path / "converted.pth"
    script = [sys.executable, str(REPO / "scripts" / "convert_checkpoint.py")]
    refused = subprocess.run([*script, str(path), str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--trust" in refused.stderr and not out.exists()
    done = subprocess.run([*script, "--trust", str(path), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "stubbing missing global train.my_filter" in done.stderr
    backbone = backbones.load(out)
    assert backbone.format == "vicreg"
    assert_same_features(backbone, model, 64)
    flat = tmp_path / "converted.safetensors"
    done = subprocess.run([*script, "--trust", "--key", "model", str(path), str(flat)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert backbones.load(flat).format == "vicreg"


def good_file(tmp_path: Path) -> Path:
    return save({"state_dict": small_state()}, tmp_path / "good.pth")


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors"])
def test_truncated_files_are_a_clear_error(tmp_path, kind):
    if kind == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file(small_state(), str(path))
    else:
        path = tmp_path / "model.pth"
        torch.save(small_state(), path, _use_new_zipfile_serialization=kind == "zip")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        backbones.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is empty"),
        (b"\x00" + random.Random(0).randbytes(4000), "not a checkpoint ssl-probe can read"),
        (b"\x89HDF\r\n\x1a\n" + bytes(100), "HDF5"),
        (b"\x1f\x8b\x08" + bytes(100), "gzip archive"),
    ],
    ids=["empty", "random-bytes", "hdf5", "gzip"],
)
def test_files_that_are_not_checkpoints(tmp_path, content, expected):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        backbones.inspect(path)
    assert str(path) in str(info.value)


def test_a_tar_archive(tmp_path):
    import tarfile

    inner = good_file(tmp_path)
    path = tmp_path / "weights.pth.tar"
    with tarfile.open(path, "w") as archive:
        archive.add(inner, arcname="checkpoint.pth")
    with pytest.raises(CheckpointError, match="tar archive, not a checkpoint: extract"):
        backbones.load(path)


def test_a_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / "ResNet50_1x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ResNet50_1x/model.ckpt-225206.index", b"x")
        archive.writestr("ResNet50_1x/model.ckpt-225206.data-00000-of-00001", b"x")
    with pytest.raises(CheckpointError, match="TensorFlow checkpoint"):
        backbones.load(path)


def test_a_directory_or_missing_path(tmp_path):
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"is a directory.*model\.pth"):
        backbones.load(tmp_path)
    with pytest.raises(CheckpointError, match="no such file"):
        backbones.load(tmp_path / "missing.pth")


def test_non_finite_weights_are_refused_naming_the_keys(tmp_path):
    sd = small_state()
    sd["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["bn1.running_var"][3] = float("inf")
    path = save(sd, tmp_path / "nan.pth")
    with pytest.raises(
        CheckpointError, match=r"2 weight tensors contain NaN or inf: bn1\.running_var, layer2\.0\.conv1\.weight"
    ):
        backbones.load(path)
    assert not backbones.inspect(path).loadable


def test_degenerate_features_warn(tmp_path):
    sd = small_state()
    sd["layer4.0.conv1.weight"].zero_()  # the block's both paths no longer depend on the image
    sd["layer4.0.downsample.0.weight"].zero_()
    path = save(sd, tmp_path / "dead.pth")
    with pytest.warns(BackboneWarning, match="zero variance"):
        backbones.load(path)


def test_reader_never_calls_an_unrestricted_torch_load(tmp_path, monkeypatch):
    """Every torch.load call made by the loader asks for weights_only=True."""
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    backbones.load(good_file(tmp_path))
    assert calls == [True]

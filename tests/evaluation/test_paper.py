"""The paper benchmarks on a tiny gtsegs-style .mat file and a tiny ImageFolder made here."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from backbones.preprocessing import RAW
from probe.cli import main
from probe.commands.paper import classifier
from probe.errors import ProbeValueError
from probe.evaluation.paper import (
    Classifier,
    GtSegs,
    read_class_index,
    run_perturbation,
    run_segmentation,
)
from tests.support.models import RegionModel

MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_gtsegs(path, images, masks) -> None:
    """A file laid out like gtsegs_ijcv.mat: MATLAB v7.3 header, struct ``value`` with [N, 1] reference
    arrays ``img`` (-> uint8 (3, W, H)) and ``gt`` (-> 1×1 cell -> (W, H) mask), data under ``#refs#``."""
    n = len(images)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        value = f.create_group("value")
        value.attrs["MATLAB_class"] = np.bytes_("struct")
        img_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        gt_refs = np.empty((n, 1), dtype=h5py.ref_dtype)
        for i, (image, mask) in enumerate(zip(images, masks)):
            stored = image.T if image.ndim == 2 else image.transpose(2, 1, 0)  # MATLAB is column-major
            img = refs.create_dataset(f"img{i}", data=stored)
            img.attrs["MATLAB_class"] = np.bytes_("uint8")
            gt = refs.create_dataset(f"gt{i}", data=mask.T.astype(np.uint8))
            cell = refs.create_dataset(f"cell{i}", data=np.array([[gt.ref]], dtype=h5py.ref_dtype))
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
            img_refs[i, 0], gt_refs[i, 0] = img.ref, cell.ref
        value.create_dataset("img", data=img_refs)
        value.create_dataset("gt", data=gt_refs)
    with open(path, "r+b") as handle:
        handle.write(MATLAB_HEADER.ljust(116))


def _scene(h: int, w: int, seed: int):
    """Dark noisy background, one bright rectangle: the object."""
    rng = np.random.default_rng(seed)
    image = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 5 : h // 2, w // 4 : (3 * w) // 4] = True
    image[mask] = 220
    return image, mask


def brightness(model, images, target):
    return images.mean(dim=1)


def test_reader_undoes_the_matlab_layout(tmp_path):
    scenes = [_scene(24, 40, 0), _scene(40, 24, 1)]
    grey, grey_mask = _scene(20, 30, 2)
    path = tmp_path / "gtsegs.mat"
    write_gtsegs(path, [s[0] for s in scenes] + [grey[:, :, 0]], [s[1] for s in scenes] + [grey_mask])
    seg = GtSegs(path)
    try:
        assert len(seg) == 3
        for i, (image, mask) in enumerate(scenes):
            assert np.array_equal(seg.image(i), image) and np.array_equal(seg.mask(i), mask)
        assert seg.image(2).shape == (20, 30, 3) and np.array_equal(seg.image(2)[:, :, 1], grey[:, :, 0])
    finally:
        seg.close()


def _clf(model) -> Classifier:
    return Classifier(model.eval(), RAW, 2, "test")


def test_segmentation_scores_of_a_perfect_and_an_inverted_map(tmp_path):
    path = tmp_path / "gtsegs.mat"
    scenes = [_scene(32, 32, s) for s in range(5)]
    write_gtsegs(path, [s[0] for s in scenes], [s[1] for s in scenes])
    clf = _clf(torchvision.models.resnet18(num_classes=2))
    perfect = run_segmentation(clf, path, explain_fn=brightness, image_size=32, batch_size=2)
    assert perfect["images"] == 5
    for key in ("pixel_accuracy", "miou", "average_precision", "paper_binary_map"):
        assert perfect[key] == pytest.approx(1.0)
    inverted = run_segmentation(clf, path, explain_fn=lambda m, x, t: -x.mean(dim=1), image_size=32, limit=3)
    assert inverted["images"] == 3
    assert inverted["pixel_accuracy"] == pytest.approx(0.0) and inverted["miou"] == pytest.approx(0.0)
    assert inverted["paper_binary_map"] == pytest.approx(0.5)  # a = 0: 0² + (1 − 0)/2
    assert inverted["average_precision"] < 0.3


def _folder(root, counts: dict[str, int], corrupt: str | None = None):
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (10, 10), (255, 255, 255)).save(root / name / f"{i}.png")
    if corrupt:
        (root / corrupt / "broken.png").write_bytes(b"not a png")


def test_perturbation_counts_hits_against_the_labels(tmp_path):
    _folder(tmp_path / "val", {"a": 2, "b": 1}, corrupt="a")
    region = torch.zeros(10, 10)
    region[:3] = 1
    clf = _clf(RegionModel(region, offset=0.5))  # white image: class 0 until 15 of 30 region pixels are black
    explain = lambda model, x, target: region.expand(x.shape[0], 10, 10)  # noqa: E731
    out = run_perturbation(clf, tmp_path / "val", explain_fn=explain, image_size=10, batch_size=2)
    assert out["images"] == 3 and len(out["skipped"]) == 1 and "broken.png" in out["skipped"][0]
    # label a (0): alive until 20 % removed; label b (1): wrong until the prediction flips to 1
    assert out["positive"]["accuracy"] == pytest.approx([2 / 3, 2 / 3] + [1 / 3] * 8)
    assert out["negative"]["accuracy"] == pytest.approx([2 / 3] * 9 + [1 / 3])
    assert out["clean_accuracy"] == pytest.approx(2 / 3)
    predicted = run_perturbation(clf, tmp_path / "val", explain_fn=explain, image_size=10, explain_class="predicted")
    assert predicted["positive"]["accuracy"] == out["positive"]["accuracy"]


def test_class_index_files(tmp_path):
    keras = tmp_path / "index.json"
    keras.write_text(json.dumps({"0": ["n01", "tench"], "1": ["n02", "goldfish"]}))
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"n02": 1, "n01": 0}))
    text = tmp_path / "synsets.txt"
    text.write_text("n01 tench, Tinca tinca\nn02 goldfish\n")
    for path in (keras, flat, text):
        assert read_class_index(path) == {"n01": 0, "n02": 1}
    _folder(tmp_path / "val", {"n02": 1, "n09": 1})
    clf = _clf(RegionModel(torch.ones(10, 10)))
    with pytest.raises(ProbeValueError, match=r"no entry for folder\(s\) \['n09'\]"):
        run_perturbation(
            clf, tmp_path / "val", explain_fn=brightness, class_index=read_class_index(text), image_size=10
        )
    clf.num_classes = 1000
    with pytest.raises(ProbeValueError, match="2 class folders but the model has 1000 outputs"):
        run_perturbation(clf, tmp_path / "val", explain_fn=brightness, image_size=10)


def test_command_line_end_to_end(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18 tiny.pth"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    _folder(tmp_path / "val", {"cat": 2, "dog": 2})
    scenes = [_scene(40, 48, s) for s in range(3)]
    write_gtsegs(tmp_path / "seg.mat", [s[0] for s in scenes], [s[1] for s in scenes])
    out = tmp_path / "res.json"
    argv = [
        "paper",
        "--model",
        "resnet18",
        "--weights",
        str(weights),
        "--imagenet-val",
        str(tmp_path / "val"),
        "--imagenet-seg",
        str(tmp_path / "seg.mat"),
        "--image-size",
        "32",
        "--batch-size",
        "3",
        "--out",
        str(out),
        "--method",
        "input_x_gradient",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "AUC" in printed and "mAP (papers' binary formula)" in printed and "AP (real, continuous map)" in printed
    results = json.loads(out.read_text())
    p, s = results["perturbation"], results["segmentation"]
    assert p["images"] == 4 and len(p["positive"]["accuracy"]) == 10
    assert p["clean_accuracy"] == p["positive"]["accuracy"][0] == p["negative"]["accuracy"][0]
    assert 0 <= p["positive"]["auc"] <= 1 and 0 <= p["negative"]["auc"] <= 1
    assert s["images"] == 3 and 0 <= s["miou"] <= 1 and 0 <= s["pixel_accuracy"] <= 1
    a_values = s["paper_binary_map"]
    assert 0.5 - 1e-9 <= a_values <= 1


def test_command_line_errors(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    assert main(["paper", "--model", "resnet18", "--weights", str(weights), "--device", "cpu"]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(["paper", "--model", "resnet18", "--imagenet-seg", "x.mat"]) == 2
    assert "probe paper: error: --weights not given: the torchvision classifier resnet18" in capsys.readouterr().err
    assert main(["paper", "--model", "resnet18", "--weights", "x.pth", "--imagenet-seg", "x.mat"]) == 2
    assert "error: --weights x.pth: no such file" in capsys.readouterr().err
    with pytest.raises(ProbeValueError, match="unknown torchvision classifier 'resnet9000'; valid: .*resnet18"):
        classifier("resnet9000", "w.pth", torch.device("cpu"))
    bogus = tmp_path / "plain.mat"
    bogus.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ProbeValueError, match="not a MATLAB v7.3"):
        GtSegs(bogus)
    other = tmp_path / "other.mat"
    with h5py.File(other, "w") as f:
        f.create_dataset("images", data=np.zeros(3))
    with pytest.raises(ProbeValueError, match=r"missing \['value/img', 'value/gt'\]; top-level keys: \['images'\]"):
        GtSegs(other)


def test_a_pseudo_class_probe_tracks_its_own_prediction(tmp_path):
    _folder(tmp_path / "val", {"x": 2, "y": 1, "z": 1})  # folder names mean nothing to a probe
    region = torch.zeros(10, 10)
    region[:3] = 1
    probe = Classifier(RegionModel(region, offset=0.5).eval(), RAW, 2, "probe", labelled=False)
    explain = lambda model, x, target: region.expand(x.shape[0], 10, 10)  # noqa: E731
    out = run_perturbation(probe, tmp_path / "val", explain_fn=explain, image_size=10, explain_class="label")
    assert out["hits_against"] == "prediction" and out["explained_class"] == "predicted"
    assert out["positive"]["accuracy"] == pytest.approx([1.0, 1.0] + [0.0] * 8)  # every image starts as class 0
    assert out["negative"]["accuracy"] == pytest.approx([1.0] * 9 + [0.0])

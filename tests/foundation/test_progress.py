"""PROBE_NO_PROGRESS has one reader, so every stage turns its progress output off for the same values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from probe.errors import ProbeValueError
from probe.progress import progress_enabled
from unsupervised import ImageFolderData, extract_features

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value, enabled",
    [
        ("1", False),
        ("true", False),
        (" YES ", False),
        ("on", False),
        ("0", True),
        ("false", True),
        ("No", True),
        ("off", True),
        ("", True),
        (None, True),
    ],
)
def test_values(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv("PROBE_NO_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("PROBE_NO_PROGRESS", value)
    assert progress_enabled() is enabled


def test_an_unknown_value_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("PROBE_NO_PROGRESS", "2")
    with pytest.raises(ProbeValueError, match=r"PROBE_NO_PROGRESS='2': expected 1, true"):
        progress_enabled()


def test_no_other_module_reads_the_variable():
    """Every stage asks ``progress_enabled``; only setting the variable for a child process is allowed elsewhere."""
    reads = re.compile(r"(environ\.get|environ\[|getenv)\(?\s*[\"']PROBE_NO_PROGRESS")
    readers = [
        str(path.relative_to(REPO))
        for package in ("probe", "backbones", "unsupervised")
        for path in sorted((REPO / package).rglob("*.py"))
        if reads.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


@pytest.mark.parametrize("value, shown", [("0", True), ("1", False)])
def test_extraction_and_evaluation_agree(monkeypatch, capfd, tmp_path, value, shown):
    """The two stages that read the variable differently before (``== "1"`` and truthiness) agree on "0"."""
    from probe.evaluation._tensors import progress

    monkeypatch.setenv("PROBE_NO_PROGRESS", value)
    assert (not isinstance(progress([1, 2], desc="evaluation"), list)) is shown  # a bar, or the list as is
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "images" / "a.png")
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    extract_features(backbone, ImageFolderData(tmp_path / "images", transform=T.ToTensor()))
    assert ("features:" in capfd.readouterr().err) is shown

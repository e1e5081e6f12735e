"""Fixtures for the unsupervised tests: a stand-in backbone and small seeded image folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.unsup_helpers import StandInBackbone, make_folder


@pytest.fixture
def backbone() -> StandInBackbone:
    return StandInBackbone(seed=0)


@pytest.fixture
def labelled_folder(tmp_path: Path) -> Path:
    """3 classes x 5 PNG images of assorted sizes."""
    return make_folder(tmp_path / "images", {"apple": 5, "banana": 5, "cherry": 5})

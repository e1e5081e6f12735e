"""Tiny models on a 2-core machine: one torch thread and no progress bars (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _quiet(quiet_single_thread):
    """Every test here runs with one torch thread and no progress bars."""

"""Fixtures: real audio files written to temporary archives, and real SQLite catalogs."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.catalog import Catalog
from drumcat.config import ScanConfig
from drumcat.synth import WRITE_FORMATS, render, write_sample


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """One one-shot in every supported format, in vendor-style folders."""
    root = tmp_path / "archive"
    for index, ext in enumerate(WRITE_FORMATS):
        instrument = ["Kick", "Snare", "Hihat", "Crash", "Tom", "Ride"][index % 6]
        write_sample(root / f"vendor{index % 2}" / f"s{index}.{ext}", render(instrument, seed=index))
    return root


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "catalog.db")
    yield cat
    cat.close()


@pytest.fixture
def scan_config() -> ScanConfig:
    return ScanConfig(workers=1)

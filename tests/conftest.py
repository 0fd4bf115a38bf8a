"""Fixtures: real audio files written to temporary archives, and real SQLite catalogs."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.audio.synth import INSTRUMENTS, WRITE_FORMATS, render, write_sample
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.model.bundle import ModelBundle, load_bundle
from drumcat.storage.catalog import Catalog


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


@pytest.fixture(scope="session")
def bundle() -> ModelBundle:
    return load_bundle()


@pytest.fixture
def scanned(tmp_path: Path, catalog: Catalog) -> Path:
    root = tmp_path / "archive"
    for index, instrument in enumerate(sorted(INSTRUMENTS)):
        for take in range(3):
            ext = ["wav", "flac", "ogg", "mp3", "aiff"][(index + take) % 5]
            path = root / f"v{take}" / f"{instrument.lower()}{take}.{ext}"
            write_sample(path, render(instrument, seed=10 * index + take))
    kick = next((root / "v0").glob("kick0.*"))
    (root / f"dup{kick.suffix}").write_bytes(kick.read_bytes())
    scan(catalog, [root], ScanConfig(workers=1))
    return root

"""Fixtures: real audio files written to temporary archives, and real SQLite catalogs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from drumcat.audio.synth import INSTRUMENTS, WRITE_FORMATS, render, write_sample
from drumcat.commands.infer import infer
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.model.bundle import ModelBundle, load_bundle
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import write_overrides


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


@pytest.fixture(scope="module")
def inferred_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo archive scanned and inferred through the command line, once per test module."""
    from drumcat.commands.demo import build_demo_archive
    from tests.helpers import drumcat

    work = tmp_path_factory.mktemp("demo")
    build_demo_archive(work / "archive")
    drumcat("--catalog", "c.db", "scan", "--quiet", "archive", cwd=work)
    drumcat("--catalog", "c.db", "infer", "--quiet", cwd=work)
    return work


@pytest.fixture
def demo(inferred_demo: Path, tmp_path: Path) -> Path:
    """A folder of this test's own: a copy of the inferred catalog beside the shared archive, so a test
    that changes the catalog changes no other test's."""
    work = tmp_path / "work"
    work.mkdir()
    with sqlite3.connect(inferred_demo / "c.db") as source, sqlite3.connect(work / "c.db") as copy:
        source.backup(copy)
    (work / "archive").symlink_to(inferred_demo / "archive")
    return work


@pytest.fixture
def corrected(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> Catalog:
    """The scanned archive inferred, and every sound corrected to its true instrument (file names say it)."""
    infer(catalog, bundle, workers=1)
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, path FROM present_files WHERE name NOT LIKE 'dup%'")
    truth = {r["hash"]: Path(r["path"]).stem.rstrip("0123456789").capitalize() for r in found}
    with catalog.connect() as conn:
        write_overrides(conn, [{"hash": h, "correct_label": label, "note": "test"} for h, label in truth.items()])
    return catalog

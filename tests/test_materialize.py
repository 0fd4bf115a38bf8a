"""`drumcat materialize`: any contract view to a folder tree, safely and atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drumcat.audio.synth import render, write_sample
from drumcat.commands.materialize import materialize
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog, rows
from tests.helpers import record_predictions


@pytest.fixture
def classified(tmp_path: Path, catalog: Catalog) -> Path:
    """Two kicks with the same file name in different vendor folders, a snare, a hat."""
    root = tmp_path / "archive"
    write_sample(root / "vendorA" / "hit.wav", render("Kick", seed=1))
    write_sample(root / "vendorB" / "hit.wav", render("Kick", seed=2))
    write_sample(root / "vendorB" / "s.wav", render("Snare", seed=3))
    write_sample(root / "vendorB" / "h.aiff", render("Hihat", seed=4))
    scan(catalog, [root], ScanConfig(workers=1))
    with catalog.read() as conn:
        found = rows(conn, "SELECT path, hash FROM files")
    by_name = {str(Path(r["path"]).relative_to(root)): r["hash"] for r in found}
    record_predictions(catalog, {
        by_name["vendorA/hit.wav"]: {"Kick": 0.9, "Tom": 0.1},
        by_name["vendorB/hit.wav"]: {"Kick": 0.8, "Tom": 0.2},
        by_name["vendorB/s.wav"]: {"Snare": 0.99, "Rim": 0.01},
        by_name["vendorB/h.aiff"]: {"Hihat": 0.6, "Shaker": 0.4},
    })
    return root


def tree_listing(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): os.readlink(p) if p.is_symlink() else p.read_bytes().hex()[:32]
            for p in sorted(out.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("mode", ["symlink", "hardlink", "copy"])
def test_each_mode_builds_the_tree(tmp_path: Path, catalog: Catalog, classified: Path, mode: str) -> None:
    out = tmp_path / "out"
    summary = materialize(catalog, "organized_default", out, mode=mode)
    assert summary.per_folder == {"Hihat": 1, "Kick": 2, "Snare": 1}
    assert (out / "Snare" / "s.wav").read_bytes() == (classified / "vendorB" / "s.wav").read_bytes()
    if mode == "symlink":
        assert (out / "Snare" / "s.wav").is_symlink()
    if mode == "hardlink":
        assert (out / "Snare" / "s.wav").stat().st_ino == (classified / "vendorB" / "s.wav").stat().st_ino
    manifest = (out / "_manifests" / "Kick.txt").read_text().splitlines()
    assert len(manifest) == 2
    data = json.loads((out / "_summary.json").read_text())
    assert data["view"] == "organized_default" and data["files"] == 4 and data["model"] == "fixture"


def test_name_collisions_get_a_deterministic_suffix(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    out = tmp_path / "out"
    summary = materialize(catalog, "organized_default", out)
    assert summary.renamed_for_collisions == 1
    assert os.readlink(out / "Kick" / "hit.wav").endswith("vendorA/hit.wav")
    assert os.readlink(out / "Kick" / "hit_2.wav").endswith("vendorB/hit.wav")


def test_running_twice_gives_the_same_tree(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    out = tmp_path / "out"
    materialize(catalog, "organized_default", out)
    first = tree_listing(out)
    materialize(catalog, "organized_default", out)
    assert tree_listing(out) == first


def test_a_user_view_with_the_contract_works(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    with catalog.connect() as conn:
        conn.exec_driver_sql("""CREATE VIEW by_format AS
            SELECT path AS src, upper(ext) || '/' || hash || '.' || ext AS dest FROM catalog""")
    summary = materialize(catalog, "by_format", tmp_path / "out")
    assert summary.per_folder == {"AIFF": 1, "WAV": 3}


def test_a_view_without_the_contract_is_a_clear_error(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    with pytest.raises(DrumcatError, match="lacks column\\(s\\) dest"):
        with catalog.connect() as conn:
            conn.exec_driver_sql("CREATE VIEW no_dest AS SELECT path AS src FROM files")
        materialize(catalog, "no_dest", tmp_path / "out")
    with pytest.raises(DrumcatError, match="'nope' does not exist"):
        materialize(catalog, "nope", tmp_path / "out")


@pytest.mark.parametrize("dest", ["/etc/passwd", "../escape.wav", "Kick/../../x.wav", "", "_summary.json"])
def test_unsafe_dest_names_the_row(tmp_path: Path, catalog: Catalog, classified: Path, dest: str) -> None:
    with catalog.connect() as conn:
        conn.exec_driver_sql(f"CREATE VIEW bad AS SELECT path AS src, '{dest}' AS dest FROM files LIMIT 1")
    with pytest.raises(DrumcatError, match="row src=.*dest"):
        materialize(catalog, "bad", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_inside_an_archive_is_refused(catalog: Catalog, classified: Path) -> None:
    with pytest.raises(DrumcatError, match="inside the scanned archive"):
        materialize(catalog, "organized_default", classified / "organized")
    with pytest.raises(DrumcatError, match="contains the scanned archive"):
        materialize(catalog, "organized_default", classified.parent)


def test_a_foreign_folder_is_never_replaced(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(DrumcatError, match="not a drumcat tree"):
        materialize(catalog, "organized_default", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_a_failure_leaves_the_previous_tree_intact(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    out = tmp_path / "out"
    materialize(catalog, "organized_default", out)
    before = tree_listing(out)
    # dest X/<hash> is a file, then X/<hash>/inner.wav needs it to be a folder: the build fails halfway.
    with catalog.connect() as conn:
        conn.exec_driver_sql("""CREATE VIEW clash AS
            SELECT path AS src, 'X/' || hash AS dest FROM catalog
            UNION ALL SELECT path, 'X/' || hash || '/inner.wav' FROM catalog""")
    with pytest.raises(OSError):
        materialize(catalog, "clash", out, mode="copy")
    assert tree_listing(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.drumcat")]


def test_sources_are_never_modified(tmp_path: Path, catalog: Catalog, classified: Path) -> None:
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in classified.rglob("*") if p.is_file()}
    for mode in ("symlink", "hardlink", "copy"):
        materialize(catalog, "organized_default", tmp_path / f"out-{mode}", mode=mode)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in classified.rglob("*") if p.is_file()}
    assert before == after

"""`drumcat scan`: first scan, incremental rescans, moves, deletions and every kind of broken file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drumcat.audio.synth import WRITE_FORMATS, render, write_sample
from drumcat.commands.kit import build_kit
from drumcat.commands.materialize import materialize
from drumcat.commands.scan import READER_CRASHED, scan
from drumcat.config import ScanConfig
from drumcat.storage.catalog import Catalog, rows
from tests.helpers import drumcat, record_predictions


def files_table(catalog: Catalog) -> dict[str, dict]:
    with catalog.read() as conn:
        return {Path(r["path"]).name: r for r in rows(conn, "SELECT * FROM files")}


def test_first_scan_catalogs_every_format(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    summary = scan(catalog, [archive], scan_config)
    assert (summary.new, summary.failed) == (len(WRITE_FORMATS), 0)
    with catalog.read() as conn:
        formats = {r["format"] for r in rows(conn, "SELECT format FROM catalog")}
        audio = rows(conn, "SELECT * FROM audio")
    assert formats == {"WAV", "AIFF", "FLAC", "OGG", "MP3"}
    assert len(audio) == len(WRITE_FORMATS)
    for row in audio:
        assert row["sample_rate"] == 44_100 and row["channels"] == 1
        assert -3.0 < row["peak_db"] <= 0.0 and row["rms_db"] < row["peak_db"]
        assert 0.2 < row["duration"] < 2.2


def test_parallel_scan_gives_the_same_catalog(archive: Path, tmp_path: Path) -> None:
    for index in range(70):  # enough files for the worker pool to be used
        write_sample(archive / "many" / f"k{index}.wav", render("Kick", seed=100 + index))
    serial, parallel = Catalog(tmp_path / "a.db"), Catalog(tmp_path / "b.db")
    scan(serial, [archive], ScanConfig(workers=1))
    scan(parallel, [archive], ScanConfig(workers=2))
    query = "SELECT path, hash FROM files ORDER BY path"
    with serial.read() as a, parallel.read() as b:
        assert rows(a, query) == rows(b, query)


def test_rescan_skips_unchanged_files(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    scan(catalog, [archive], scan_config)
    before = files_table(catalog)
    # Rewrite a file's bytes but keep its size and mtime: a scan that re-read content would notice.
    target = archive / "vendor0" / "s0.wav"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-100:] = bytes(100)
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    summary = scan(catalog, [archive], scan_config)
    assert (summary.new, summary.changed, summary.unchanged) == (0, 0, len(WRITE_FORMATS))
    assert files_table(catalog)["s0.wav"]["hash"] == before["s0.wav"]["hash"]


def test_changed_file_is_read_again(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    scan(catalog, [archive], scan_config)
    old_hash = files_table(catalog)["s0.wav"]["hash"]
    write_sample(archive / "vendor0" / "s0.wav", render("Snare", seed=99))
    summary = scan(catalog, [archive], scan_config)
    assert summary.changed == 1
    assert files_table(catalog)["s0.wav"]["hash"] != old_hash


def test_moved_file_keeps_its_hash_and_is_counted(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    scan(catalog, [archive], scan_config)
    old_hash = files_table(catalog)["s1.aif"]["hash"]
    (archive / "renamed").mkdir()
    shutil.move(archive / "vendor1" / "s1.aif", archive / "renamed" / "kick-final.aif")
    summary = scan(catalog, [archive], scan_config)
    assert (summary.new, summary.moved, summary.missing) == (1, 1, 1)
    table = files_table(catalog)
    assert table["kick-final.aif"]["hash"] == old_hash
    assert table["s1.aif"]["missing"] == 1


def test_deleted_file_is_marked_missing_not_deleted(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    scan(catalog, [archive], scan_config)
    (archive / "vendor0" / "s2.aiff").unlink()
    summary = scan(catalog, [archive], scan_config)
    assert summary.missing == 1
    assert files_table(catalog)["s2.aiff"]["missing"] == 1
    summary = scan(catalog, [archive], scan_config)
    assert summary.missing == 0  # counted once, when it disappears


def test_broken_files_are_recorded_and_the_scan_goes_on(
    archive: Path, catalog: Catalog, scan_config: ScanConfig
) -> None:
    broken = archive / "broken"
    broken.mkdir()
    (broken / "empty.wav").write_bytes(b"")
    (broken / "text.mp3").write_text("this is not audio at all\n" * 50)
    good = write_sample(archive / "vendor0" / "long.wav", render("Crash", seed=5)).read_bytes()
    (broken / "truncated.wav").write_bytes(good[: len(good) // 3])
    (broken / "dangling.flac").symlink_to(broken / "does-not-exist.flac")
    summary = scan(catalog, [archive], scan_config)
    assert summary.failed == 4
    assert summary.new == len(WRITE_FORMATS) + 1 + 4
    table = files_table(catalog)
    kinds = {name: table[name]["error_kind"] for name in ("empty.wav", "text.mp3", "truncated.wav", "dangling.flac")}
    assert kinds == {"empty.wav": "empty", "text.mp3": "not_audio", "truncated.wav": "truncated",
                     "dangling.flac": "unreadable"}
    assert all(table[name]["error"] for name in kinds)
    assert table["long.wav"]["error"] is None


def test_a_folder_of_a_scanned_archive_is_scanned_as_part_of_it(archive: Path, catalog: Catalog,
                                                                 scan_config: ScanConfig) -> None:
    """Overlapping roots counted each other's files as new, read them again, and a file deleted under the
    inner one was never marked missing by a scan of the outer one."""
    vendor = archive / "vendor0"
    in_vendor = len(list(vendor.iterdir()))
    first = scan(catalog, [vendor], scan_config)  # a vendor folder first, then the whole archive
    assert first.new == in_vendor
    whole = scan(catalog, [archive], scan_config)
    assert (whole.new, whole.unchanged) == (len(WRITE_FORMATS) - in_vendor, in_vendor)
    again = scan(catalog, [vendor, archive], scan_config)  # the vendor folder is walked once, with the archive
    assert (again.new, again.unchanged) == (0, len(WRITE_FORMATS))
    (archive / "vendor1" / sorted(p.name for p in (archive / "vendor1").iterdir())[0]).unlink()
    gone = sorted(vendor.iterdir())[0]
    gone.unlink()
    partial = scan(catalog, [vendor], scan_config)  # a vendor folder says nothing of the others
    assert (partial.new, partial.unchanged, partial.missing) == (0, in_vendor - 1, 1)
    assert scan(catalog, [archive], scan_config).missing == 1  # vendor1's file
    with catalog.read() as conn:
        assert [r["path"] for r in rows(conn, "SELECT path FROM roots")] == [str(archive.resolve())]
        rel = {r["path"]: r["rel_path"] for r in rows(conn, "SELECT path, rel_path FROM files")}
    assert rel[str(gone.resolve())] == f"vendor0/{gone.name}"
    with catalog.connect() as conn:  # roots inside one another, as an older drumcat registered them
        conn.exec_driver_sql("INSERT INTO roots (id, path, added_at) VALUES (99, ?, '2026-01-01T00:00:00Z')",
                             (str(vendor.resolve()),))
        conn.exec_driver_sql("UPDATE files SET root_id = 99, rel_path = 'x' WHERE path LIKE ?",
                             (f"{vendor.resolve()}/%",))
    healed = scan(catalog, [vendor], scan_config)
    assert (healed.new, healed.unchanged) == (0, in_vendor - 1)
    with catalog.read() as conn:
        assert [r["path"] for r in rows(conn, "SELECT path FROM roots")] == [str(archive.resolve())]
        assert rows(conn, "SELECT rel_path FROM files WHERE path = :p", {"p": str(gone.resolve())}) == [
            {"rel_path": f"vendor0/{gone.name}"}]


def test_trees_and_kits_drumcat_made_are_not_scanned(archive: Path, catalog: Catalog, tmp_path: Path,
                                                     scan_config: ScanConfig) -> None:
    """A library folder holding a tree and a kit made from it: their links and copies were catalogued as
    more copies of each sound, and a link could become the path a sound is read and linked from."""
    scan(catalog, [archive], scan_config)
    with catalog.read() as conn:
        hashes = [r["hash"] for r in rows(conn, "SELECT hash FROM unique_files")]
    record_predictions(catalog, {h: {"Kick": 0.9} for h in hashes})
    materialize(catalog, "organized_default", tmp_path / "organized")
    build_kit(catalog, "organized_default", tmp_path / "kit")
    library = Catalog(tmp_path / "library.db")
    summary = scan(library, [tmp_path], scan_config)  # the archive, the tree and the kit
    assert summary.new == len(WRITE_FORMATS)
    assert sorted(line.split(":")[0] for line in summary.skipped_dirs) == [str(tmp_path / "kit"),
                                                                            str(tmp_path / "organized")]
    with library.read() as conn:
        paths = [r["path"] for r in rows(conn, "SELECT path FROM files")]
    assert all(path.startswith(str(archive)) for path in paths)
    library.close()


def test_a_small_scan_keeps_the_decoders_notes_off_the_terminal(tmp_path: Path) -> None:
    """A scan of fewer files than a chunk reads them in its own process, where mpg123 printed its notes on a
    damaged MP3 ("Note: Illegal Audio-MPEG-Header ...") to the terminal; workers send them to /dev/null.
    The catalog records the file's error either way."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "damaged.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    write_sample(archive / "kick.wav", render("Kick", seed=1))
    result = drumcat("--catalog", str(tmp_path / "catalog.db"), "scan", str(archive), cwd=tmp_path)
    assert result.stderr == ""
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        assert conn.execute("SELECT rel_path, error_kind FROM files WHERE error IS NOT NULL").fetchall() == [
            ("damaged.mp3", "not_audio")]


def test_symlink_loop_does_not_hang(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    (archive / "vendor0" / "loop").symlink_to(archive)
    summary = scan(catalog, [archive], scan_config)
    assert summary.new == len(WRITE_FORMATS)
    assert any("already visited" in line for line in summary.skipped_dirs)


def test_scan_never_modifies_the_archive(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in archive.rglob("*") if p.is_file()}
    scan(catalog, [archive], scan_config)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in archive.rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command line is not installed")
def test_result_reads_well_with_the_sqlite3_command_line(
    archive: Path, catalog: Catalog, scan_config: ScanConfig
) -> None:
    scan(catalog, [archive], scan_config)
    output = subprocess.run(
        ["sqlite3", "-csv", str(catalog.path), "SELECT format, count(*) FROM catalog GROUP BY format ORDER BY 1"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert output.split() == ["AIFF,2", "FLAC,1", "MP3,1", "OGG,1", "WAV,1"]


def test_catalog_is_readable_by_plain_sqlite3_module(archive: Path, catalog: Catalog, scan_config: ScanConfig) -> None:
    scan(catalog, [archive], scan_config)
    with sqlite3.connect(catalog.path) as db:
        assert db.execute("SELECT count(*) FROM catalog").fetchone()[0] == len(WRITE_FORMATS)


A_READER_DIES = """
import os, signal, sys
from pathlib import Path
from drumcat.commands import scan as scanning
from drumcat.config import ScanConfig
from drumcat.storage.catalog import Catalog

read = scanning.read_file
def read_or_die(found, algorithm, measure_levels):  # as when a decoder in C crashes on one file
    if found.path.endswith("s70.wav"):
        os.kill(os.getpid(), signal.SIGKILL)
    return read(found, algorithm, measure_levels)
scanning.read_file = read_or_die
summary = scanning.scan(Catalog(Path(sys.argv[1]), create=True), [Path(sys.argv[2])], ScanConfig(workers=2))
print(summary.new, summary.failed)
"""


def test_a_reader_that_dies_costs_its_file_not_the_scan(tmp_path: Path) -> None:
    """multiprocessing.Pool waited forever for the files a dead worker took with it."""
    for index in range(150):
        write_sample(tmp_path / "archive" / f"s{index}.wav", render("Kick", seed=index))
    command = [sys.executable, "-c", A_READER_DIES, str(tmp_path / "catalog.db"), str(tmp_path / "archive")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["150", "1"]
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        failed = conn.execute("SELECT rel_path, error FROM files WHERE error IS NOT NULL").fetchall()
        assert failed == [("s70.wav", READER_CRASHED)]
        assert conn.execute("SELECT count(*) FROM files WHERE hash IS NOT NULL").fetchone() == (149,)

"""No input loses a tree, a catalog or a user's file, and every failure is one line (issue #12).
Each test is a case that went wrong before: run as a user would, through the command line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from drumcat.audio.synth import render, write_sample
from drumcat.commands.demo import build_demo_archive
from tests.helpers import drumcat


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def tree_files(tree: Path) -> list[str]:
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if not p.is_dir())


def test_a_mistyped_catalog_is_refused_and_the_tree_kept(demo: Path) -> None:
    drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo)
    before = tree_files(demo / "T")
    error = one_line_error(drumcat("--catalog", "typo.db", "materialize", "--out", "T", cwd=demo, check=False))
    assert "no catalog at typo.db" in error and not (demo / "typo.db").exists()
    assert tree_files(demo / "T") == before and len(before) > 24


def test_an_empty_result_does_not_replace_a_tree_without_allow_empty(demo: Path) -> None:
    drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo)
    with sqlite3.connect(demo / "c.db") as db:
        db.execute("CREATE VIEW no_files AS SELECT src, dest FROM organized_default WHERE 0")
    error = one_line_error(drumcat("--catalog", "c.db", "materialize", "--view", "no_files", "--out", "T",
                                   cwd=demo, check=False))
    assert "--allow-empty" in error and len(tree_files(demo / "T")) > 24
    drumcat("--catalog", "c.db", "materialize", "--view", "no_files", "--out", "T", "--allow-empty", cwd=demo)
    assert [f for f in tree_files(demo / "T") if not f.startswith(("_", "."))] == []


def test_a_users_file_in_a_tree_is_never_deleted(demo: Path) -> None:
    drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo)
    (demo / "T" / "Kick" / "notes.txt").write_text("my notes")
    error = one_line_error(drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo, check=False))
    assert "Kick/notes.txt" in error
    assert (demo / "T" / "Kick" / "notes.txt").read_text() == "my notes"


def test_a_stray_summary_file_does_not_make_a_folder_a_tree(demo: Path) -> None:
    folder = demo / "mine"
    folder.mkdir()
    (folder / "_summary.json").write_text("{}")
    (folder / "song.wav").write_bytes(b"precious")
    error = one_line_error(drumcat("--catalog", "c.db", "materialize", "--out", "mine", cwd=demo, check=False))
    assert "not a drumcat tree" in error and (folder / "song.wav").read_bytes() == b"precious"


def test_an_out_reached_through_a_symlink_into_the_archive_is_refused(demo: Path, inferred_demo: Path) -> None:
    (demo / "link").symlink_to(inferred_demo / "archive" / "misc")
    error = one_line_error(drumcat("--catalog", "c.db", "materialize", "--out", "link/tree", cwd=demo, check=False))
    assert "inside the scanned archive" in error
    assert not (inferred_demo / "archive" / "misc" / "tree").exists()


def test_a_catalog_path_at_an_existing_other_file_is_refused(demo: Path, inferred_demo: Path) -> None:
    target = demo / "sample.wav"
    target.write_bytes(b"")
    error = one_line_error(drumcat("--catalog", "sample.wav", "scan", "archive", cwd=demo, check=False))
    assert "not a drumcat catalog" in error and target.read_bytes() == b""


def test_a_damaged_catalog_is_one_line_for_every_command_and_check_finds_it(demo: Path) -> None:
    data = bytearray((demo / "c.db").read_bytes())
    data[8192:12288] = b"\xff" * 4096
    (demo / "bad.db").write_bytes(bytes(data))
    for command in (["stats"], ["scan", "archive"], ["check"], ["views"], ["infer"], ["query", "SELECT * FROM files"],
                    ["materialize", "--out", "T2"]):
        result = drumcat("--catalog", "bad.db", *command, cwd=demo, check=False)
        if result.returncode != 0:  # a command that never reads the damaged page may finish; none may crash
            assert "damaged" in one_line_error(result) or "error" in result.stderr
        assert "Traceback" not in result.stderr
    assert "damaged" in one_line_error(drumcat("--catalog", "bad.db", "check", cwd=demo, check=False))
    assert "ok" in drumcat("--catalog", "c.db", "check", cwd=demo).stdout


def test_fifos_and_device_links_are_skipped_not_read(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    os.mkfifo(archive / "pipe.wav")
    (archive / "zero.wav").symlink_to("/dev/zero")
    result = drumcat("--catalog", "c.db", "scan", "--json", "archive", cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert any("pipe.wav: a FIFO" in s for s in summary["skipped_dirs"])
    assert any("zero.wav: a character device" in s for s in summary["skipped_dirs"])


def test_narrowing_the_formats_excludes_files_instead_of_calling_them_missing(tmp_path: Path) -> None:
    build_demo_archive(tmp_path / "archive")
    drumcat("--catalog", "c.db", "scan", "-q", "archive", cwd=tmp_path)
    (tmp_path / "wav-only.toml").write_text('[catalog]\npath = "c.db"\n[scan]\nformats = ["wav"]\n')
    summary = json.loads(drumcat("--config", "wav-only.toml", "scan", "--json", "archive", cwd=tmp_path).stdout)
    assert summary["missing"] == 0
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT count(*) FROM files WHERE error_kind = 'excluded'").fetchone()[0] > 0
        assert db.execute("SELECT count(*) FROM files WHERE missing = 1").fetchone()[0] == 0
    drumcat("--catalog", "c.db", "scan", "-q", "archive", cwd=tmp_path)  # all formats again: back
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT count(*) FROM files WHERE error_kind = 'excluded'").fetchone()[0] == 0


def test_a_broken_user_view_is_listed_as_broken(demo: Path) -> None:
    with sqlite3.connect(demo / "c.db") as db:
        db.execute("CREATE TABLE scratch (x)")
        db.execute("CREATE VIEW mine AS SELECT x FROM scratch")
        db.execute("DROP TABLE scratch")
    listing = json.loads(drumcat("--catalog", "c.db", "views", "--json", cwd=demo).stdout)
    assert next(v for v in listing if v["view"] == "mine")["description"].startswith("broken: ")


def test_attach_is_denied_and_creates_no_file(demo: Path) -> None:
    error = one_line_error(drumcat("--catalog", "c.db", "query", f"ATTACH '{demo / 'x.db'}' AS y", cwd=demo,
                                   check=False))
    assert "read-only" in error and not (demo / "x.db").exists()


def test_abandoned_staging_folders_are_cleaned_by_the_next_run(demo: Path) -> None:
    drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo)
    left = demo / ".T.drumcat-new-killed"
    left.mkdir()
    (left / ".drumcat-staging.json").write_text(json.dumps({"out": str((demo / "T").resolve())}))
    (left / "half.wav").write_bytes(b"x")
    other = demo / ".T.drumcat-new-not-ours"
    other.mkdir()
    (other / "someone-elses.wav").write_bytes(b"x")  # no marker: not provably drumcat's, so kept
    empty = demo / ".T.drumcat-new-killed-at-birth"
    empty.mkdir()  # a run killed before it wrote its marker: empty, removed
    cut = demo / ".T.drumcat-new-killed-writing-its-marker"
    cut.mkdir()
    (cut / ".drumcat-staging.json").write_text('{"ou')  # SIGKILL between the marker's open and its write
    old_tree = demo / ".T.drumcat-new-old-tree-being-marked"
    shutil.copytree(demo / "T", old_tree, symlinks=True)  # swapped out, killed while marking it for removal
    (old_tree / ".drumcat-staging.json").write_text("")
    cut_beside_foreign = demo / ".T.drumcat-new-cut-marker-not-ours"
    cut_beside_foreign.mkdir()
    (cut_beside_foreign / ".drumcat-staging.json").write_text("")
    (cut_beside_foreign / "someone-elses.wav").write_bytes(b"x")
    drumcat("--catalog", "c.db", "materialize", "--out", "T", cwd=demo)
    assert not left.exists() and not empty.exists() and not cut.exists() and not old_tree.exists()
    assert (other / "someone-elses.wav").read_bytes() == b"x"
    assert (cut_beside_foreign / "someone-elses.wav").read_bytes() == b"x"


@pytest.mark.parametrize("args", [
    ["overrides", "import", "binary.jsonl"],
    ["overrides", "export", "no/such/folder/out.jsonl"],
    ["model", "add", "m.keras", "--labels", "binary.jsonl"],
    ["materialize", "--view", 'a"b', "--out", "T3"],
    ["train", "--dataset", "/nonexistent"],
    ["infer", "--workers", "-3"],
    ["scan", "--workers", "-2", "archive"],
    ["duplicates", "--workers", "-2"],
    ["infer", "--batch-size", "0"],
    ["infer", "--limit", "-1"],
    ["rules", "set", "threshold", "high"],
    ["similar", "nothing-like-this"],
    ["kit", "--out", "K", "--format", "gm"],
    ["serve", "--port", "0"],
])
def test_bad_input_is_one_line_naming_what_to_fix(demo: Path, args: list[str]) -> None:
    (demo / "binary.jsonl").write_bytes(b"\x00\xff\xfe\x00")
    (demo / "m.keras").write_bytes(b"not a model")
    one_line_error(drumcat("--catalog", "c.db", *args, cwd=demo, check=False))


def test_a_folder_alias_inside_the_archive_keeps_the_real_paths(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    (archive / "zz-alias").symlink_to(archive / "VendorA_Mega_Pack")
    (archive / "00-alias").symlink_to(archive / "VendorA_Mega_Pack")  # sorts first: followed last all the same
    summary = json.loads(drumcat("--catalog", "c.db", "scan", "--json", "archive", cwd=tmp_path).stdout)
    with sqlite3.connect(tmp_path / "c.db") as db:
        paths = [p for (p,) in db.execute("SELECT rel_path FROM files")]
    assert not any("alias" in p for p in paths) and any(p.startswith("VendorA_Mega_Pack/") for p in paths)
    assert sum("alias" in s for s in summary["skipped_dirs"]) == 2


def test_an_override_by_a_path_through_a_symlink_finds_the_sound(demo: Path, inferred_demo: Path) -> None:
    (demo / "shortcut").symlink_to(inferred_demo / "archive" / "VendorA_Mega_Pack")
    target = next((demo / "shortcut").glob("smp_0000.*"))
    assert "override" in drumcat("--catalog", "c.db", "override", str(target), "Kick", cwd=demo).stdout
    linked = demo / "one-file.wav"
    linked.symlink_to(target.resolve())
    drumcat("--catalog", "c.db", "override", str(linked), "Snare", cwd=demo)
    copied = demo / "a-copy.wav"
    copied.write_bytes(target.read_bytes())  # not catalogued by path: found by its content
    drumcat("--catalog", "c.db", "override", str(copied), "Tom", cwd=demo)
    with sqlite3.connect(demo / "c.db") as db:
        assert db.execute("SELECT label FROM overrides").fetchall() == [("Tom",)]


def test_names_that_are_not_utf8_are_catalogued_classified_placed_and_corrected(tmp_path: Path) -> None:
    from drumcat.audio.synth import render, write_sample

    archive = tmp_path / "archive"
    archive.mkdir()
    names = [b"\xff\xfe kick.wav", b"caf\xe9 snare.flac"]  # Latin-1 and garbage bytes, as old packs hold
    for index, name in enumerate(names):
        written = archive / f"tmp{index}{os.fsdecode(name)[-5:]}"
        write_sample(written, render(["Kick", "Snare"][index], seed=index))
        os.rename(written, os.path.join(os.fsencode(archive), name))
    scanned = json.loads(drumcat("--catalog", "c.db", "scan", "--json", "archive", cwd=tmp_path).stdout)
    assert scanned["new"] == 2 and scanned["failed"] == 0
    drumcat("--catalog", "c.db", "infer", "-q", cwd=tmp_path)
    drumcat("--catalog", "c.db", "materialize", "--out", "tree", cwd=tmp_path)
    links = [p for p in (tmp_path / "tree").rglob("*") if p.is_symlink()]
    assert sorted(os.fsencode(p.readlink().name) for p in links) == sorted(names)
    assert all(p.resolve().is_file() for p in links)
    target = os.fsdecode(os.path.join(os.fsencode(archive), names[1]))
    result = subprocess.run([sys.executable, "-m", "drumcat.cli", "--catalog", "c.db", "override", target, "Tom"],
                            cwd=tmp_path, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT label FROM overrides").fetchall() == [("Tom",)]


def test_a_read_only_catalog_is_one_line_for_the_commands_that_write(demo: Path) -> None:
    """An immutable file (chattr +i) is read-only even for root, who ignores permission bits."""
    catalog = demo / "c.db"
    if subprocess.run(["chattr", "+i", str(catalog)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on ext4 or a like file system)")
    try:
        for args in (["scan", "archive"], ["infer"], ["override", str(next((demo / "archive").rglob("*.wav"))),
                                                      "Kick"]):
            error = one_line_error(drumcat("--catalog", "c.db", *args, cwd=demo, check=False))
            assert "read-only" in error
    finally:
        subprocess.run(["chattr", "-i", str(catalog)], capture_output=True)


def test_a_full_disk_is_one_line_and_leaves_a_sound_catalog(tmp_path: Path) -> None:
    """The catalog on a 1 MB file system, filled by a scan: the command stops with what to do, and the
    catalog is whole (what it committed is kept; a rerun with space goes on from there)."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        for index in range(1500):
            write_sample(tmp_path / "archive" / f"v{index % 20}" / f"s{index}.wav",
                         render("Kick", seed=index)[:2000])
        error = one_line_error(drumcat("--catalog", str(small / "c.db"), "scan", "archive", cwd=tmp_path,
                                       check=False))
        assert "disk is full; free space there and run the command again" in error
        db = sqlite3.connect(small / "c.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            db.close()  # an open file keeps the file system busy: umount would fail
    finally:
        subprocess.run(["umount", "--lazy", str(small)], capture_output=True)

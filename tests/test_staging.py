"""drumcat.staging on its own: what a write takes back, that a live run's folder is never taken for an
abandoned one (the review page's learning loop and a terminal's `drumcat adapt` share a models folder), and
single files written whole."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from drumcat.outputs import STAGING_MARKER
from drumcat.staging import (
    files_staged_beside,
    move_in,
    remove_abandoned_file_writes,
    remove_abandoned_staging,
    staging_beside,
    write_whole,
)


def not_a_whole_output(_: Path) -> None:
    return None


def staged_bundle(folder: Path) -> list[tuple[str, Path]]:
    """Three files written into a staging folder, and where they go: the card last."""
    for name, content in (("m.keras", b"weights"), ("m.tflite", b"export"), ("m.json", b"{}")):
        (folder / name).write_bytes(content)
    return [(name, folder.parent / name) for name in ("m.keras", "m.tflite", "m.json")]


def test_a_write_moves_its_files_in_card_last_and_leaves_no_staging(tmp_path: Path) -> None:
    with files_staged_beside(tmp_path / "m.keras", "adapt") as staging:
        move_in(staging, staged_bundle(staging))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras", "m.tflite"]


def test_a_write_that_fails_before_its_card_takes_back_what_it_moved(tmp_path: Path) -> None:
    (tmp_path / "m.json").mkdir()  # the card's name is taken: its move fails after the other two's
    with pytest.raises(OSError), files_staged_beside(tmp_path / "m.keras", "adapt") as staging:
        move_in(staging, staged_bundle(staging))
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_taking_back_keeps_a_file_whose_content_is_not_the_one_written(tmp_path: Path) -> None:
    """A file put at a destination after a killed write (a user's, or the next write's) is not drumcat's
    to remove, though it has the name."""
    leftover = killed_before_the_card(tmp_path)
    (tmp_path / "m.keras").write_bytes(b"someone else's weights")
    assert remove_abandoned_file_writes(tmp_path, "adapt") == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]
    assert (tmp_path / "m.keras").read_bytes() == b"someone else's weights"


def test_a_write_killed_before_its_card_is_taken_back_by_the_next_run(tmp_path: Path) -> None:
    leftover = killed_before_the_card(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [leftover.name, "m.json", "m.keras", "m.tflite"]
    assert remove_abandoned_file_writes(tmp_path, "adapt") == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def killed_before_the_card(folder: Path) -> Path:
    """A staging folder as a run killed after moving in the weights and the export leaves it (the card's
    move fails here instead, its name taken by a folder, and nothing is taken back)."""
    leftover = folder / ".m.keras.drumcat-adapt-killed"
    leftover.mkdir()
    (leftover / STAGING_MARKER).write_text(json.dumps({"out": str(folder / "m.keras")}))
    (folder / "m.json").mkdir()
    with pytest.raises(OSError):
        move_in(leftover, staged_bundle(leftover))
    return leftover


def test_after_the_card_arrived_only_the_staging_folder_is_removed(tmp_path: Path) -> None:
    leftover = tmp_path / ".m.keras.drumcat-adapt-killed"
    leftover.mkdir()
    moves = staged_bundle(leftover)
    (leftover / STAGING_MARKER).write_text(json.dumps({"out": str(tmp_path / "m.keras")}))
    move_in(leftover, moves)  # ... and killed before the folder was removed
    assert remove_abandoned_file_writes(tmp_path, "adapt") == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras", "m.tflite"]


def test_a_folder_without_proof_is_kept(tmp_path: Path) -> None:
    foreign = tmp_path / ".m.keras.drumcat-adapt-x"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (foreign / STAGING_MARKER).write_text('{"o')  # cut short, and beside a file drumcat did not make
    assert remove_abandoned_file_writes(tmp_path, "adapt") == []
    assert (foreign / "notes.txt").read_text() == "mine"


def cleanup_in_another_process(folder: str, out: str) -> list[int]:
    return [len(remove_abandoned_file_writes(Path(folder), "adapt")),
            len(remove_abandoned_staging(Path(out), not_a_whole_output))]


def test_a_live_runs_staging_folders_are_not_taken_for_abandoned_ones(tmp_path: Path) -> None:
    """Another process's cleanup, while this one writes a bundle and builds a tree, removes neither."""
    tree = tmp_path / "T"
    context = multiprocessing.get_context("spawn")  # a process of its own, as a second drumcat would be
    with files_staged_beside(tmp_path / "m.keras", "adapt") as bundle, staging_beside(tree, "new") as building:
        moves = staged_bundle(bundle)
        (building / "Kick").mkdir()
        with context.Pool(1) as pool:
            assert pool.apply(cleanup_in_another_process, (str(tmp_path), str(tree))) == [0, 0]
        assert (building / STAGING_MARKER).is_file() and (bundle / STAGING_MARKER).is_file()
        move_in(bundle, moves)
    assert (tree / "Kick").is_dir() and (tmp_path / "m.json").is_file()
    with context.Pool(1) as pool:  # and once this run is done there is nothing left to clean
        assert pool.apply(cleanup_in_another_process, (str(tmp_path), str(tree))) == [0, 0]


def test_a_file_of_equal_content_that_this_write_did_not_move_is_kept(tmp_path: Path) -> None:
    """Two runs writing the same bytes under one name: the one whose move was refused takes back nothing of
    the other's, though the content is the same."""
    with files_staged_beside(tmp_path / "m.keras", "adapt") as first:
        move_in(first, staged_bundle(first))
    with pytest.raises(FileExistsError), files_staged_beside(tmp_path / "m.keras", "adapt") as second:
        move_in(second, staged_bundle(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras", "m.tflite"]


def test_a_whole_write_replaces_the_file_with_the_umasks_mode(tmp_path: Path) -> None:
    card = tmp_path / "m.json"
    card.write_text("old")
    umask = os.umask(0o022)
    try:
        write_whole(card, "new")
    finally:
        os.umask(umask)
    assert card.read_text() == "new" and card.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert list(tmp_path.iterdir()) == [card]


def test_a_failed_whole_write_leaves_the_old_file_and_nothing_beside_it(tmp_path: Path) -> None:
    card = tmp_path / "m.json"
    card.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_whole(card, "new \udc80")  # fails once the hidden file is open
    assert card.read_text() == "old" and list(tmp_path.iterdir()) == [card]


def test_a_killed_writers_hidden_file_goes_with_the_next_write_and_a_live_ones_stays(tmp_path: Path) -> None:
    card = tmp_path / "m.json"
    killed, live = (tmp_path / f".m.json.drumcat-write-{tag}" for tag in ("0123abcd", "4567ef01"))
    killed.write_text('{"na')
    live.write_text('{"name"')
    descriptor = os.open(live, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # as the writer that made it holds it
    try:
        write_whole(card, "{}")
    finally:
        os.close(descriptor)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "m.json"]


def test_leftovers_of_an_output_whose_name_looks_like_a_pattern_are_found(tmp_path: Path) -> None:
    out = tmp_path / "Kit [808]"
    leftover = tmp_path / ".Kit [808].drumcat-new-x1"
    leftover.mkdir()
    (leftover / STAGING_MARKER).write_text(json.dumps({"out": str(out)}))
    assert remove_abandoned_staging(out, not_a_whole_output) == [leftover]

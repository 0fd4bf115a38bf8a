"""Writing outputs whole: built in a hidden folder beside them, then swapped or moved in when complete.

`materialize` (a tree) and `kit` (a kit) replace a folder this way (`staging_beside`), so a failure or a
kill at any moment leaves the old folder or the new one at `out`, never half of either. `adapt` writes a
model bundle, several files beside one another, this way too (`files_staged_beside`): its card moves in
last, and a run killed before that is undone by the next. Whatever a killed run left is removed by the next
run once it is proven drumcat's.

Proof of ownership is STAGING_MARKER, naming the `out` the folder was made for. A folder holds it from
birth until it is complete, and again from the moment an old folder is marked for removal until the
folder is gone (the marker is removed last). In between, the folder is a whole output whose own marker
lists every file in it: the caller's `foreign_files` says which files that marker does not vouch for.

A run holds a lock (flock) on each folder it is building or removing, and a folder whose lock is held is
never taken for an abandoned one: the review page's learning loop and a `drumcat adapt` in a terminal can
write into one models folder at once. The kernel drops a lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import fcntl
import glob
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from drumcat.outputs import STAGING_MARKER

ForeignFiles = Callable[[Path], list[str] | None]
"""The files in a folder that its output marker does not vouch for; None: not a whole output at all."""


def write_whole(path: Path, content: str | bytes, *, sweep: bool = True) -> None:
    """Write a file so that a reader, or a kill, finds the old content or the new, never part of either:
    into a hidden file beside it (`.NAME.drumcat-write-*`, a name of its own for each writer, locked while
    it is written), renamed over it. A failure removes the hidden file; a kill leaves it, and the next
    write of `path` removes it, unless `sweep` is off (that looks through the whole folder: too slow for
    every write into a cache of a hundred thousand files)."""
    if sweep:
        _remove_killed_writes(path)
    temporary = path.parent / f".{path.name}.drumcat-write-{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(descriptor, "wb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not _still_at(handle.fileno(), temporary):  # taken for a leftover before it was locked
                raise FileNotFoundError(f"{temporary}: removed by another writer of {path.name}; write again")
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.replace(temporary, path)  # before the lock is released with the close
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _remove_killed_writes(path: Path) -> None:
    """The hidden files killed writers of `path` left (`write_whole`): those no live writer holds locked."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.drumcat-write-{'[0-9a-f]' * 8}"):
        with _locked(leftover, wait=False) as abandoned:
            if abandoned and leftover.is_file():
                leftover.unlink()


@contextmanager
def staging_beside(out: Path, kind: str) -> Iterator[Path]:
    """A marked hidden folder beside `out` to build into; swapped in for `out` when the block ends
    without an error, removed when it raises (the old folder at `out` untouched)."""
    with _new_staging_folder(out, kind) as staging:
        try:
            yield staging
            (staging / STAGING_MARKER).unlink()
            swap_in(staging, out)
        except BaseException:
            if staging.exists():
                mark_as_own(staging, out)
                remove_own_folder(staging)
            raise


@contextmanager
def files_staged_beside(out: Path, kind: str) -> Iterator[Path]:
    """A marked hidden folder beside `out` to write files into, which the block moves in with `move_in`;
    removed when the block ends. When the block raises before the last file is moved in, the files it did
    move in are taken back (`take_back`), so nothing of the write stays."""
    with _new_staging_folder(out, kind) as staging:
        try:
            yield staging
        except BaseException:
            take_back(staging)
            raise
        remove_own_folder(staging)


def move_in(staging: Path, moves: list[tuple[str, Path]]) -> None:
    """Move files out of a staging folder to their destinations, in order; the last one is the commit (a
    bundle's card, without which the others are not loadable). A destination that exists is never
    replaced: the write stops there, as another run took the name first. The marker first records each
    move and its content's sha256, so that a run killed part way is undone (`take_back`)."""
    marker = _marker(staging) or {}
    marker["moves"] = [[name, str(destination), file_sha256(staging / name)] for name, destination in moves]
    write_whole(staging / STAGING_MARKER, json.dumps(marker))  # a kill leaves the old marker or the new, whole
    for name, destination in moves:
        _move_without_replacing(staging / name, destination)


def take_back(staging: Path) -> None:
    """Undo a file write that did not reach its commit: remove the files it moved in, then the staging
    folder. After the commit, only the folder goes."""
    moves = (_marker(staging) or {}).get("moves", [])
    if moves and not _moved_in(staging, *moves[-1]):
        for name, destination, sha256 in moves:
            if _moved_in(staging, name, destination, sha256):
                Path(destination).unlink()
    remove_own_folder(staging)


def remove_abandoned_file_writes(folder: Path, kind: str) -> list[Path]:
    """Staging folders a killed run of `kind` left in `folder` (`files_staged_beside`): each write undone
    when the folder is proven drumcat's, or the folder removed when it is empty."""
    def ours(candidate: Path) -> bool:
        marker = _marker(candidate)
        return marker is not None and "out" in marker or _holds_only_a_cut_marker(candidate)

    return _remove_abandoned(folder.glob(f".*.drumcat-{kind}-*"), ours, take_back)


def remove_abandoned_staging(out: Path, foreign_files: ForeignFiles) -> list[Path]:
    """Folders an interrupted run left beside `out` (an output being built, or the old one being
    removed): removed when proven drumcat's for `out` (`made_for`), or when they are empty."""
    return _remove_abandoned(out.parent.glob(f".{glob.escape(out.name)}.drumcat-*"),
                             lambda candidate: made_for(candidate, out, foreign_files), remove_own_folder)


def made_for(candidate: Path, out: Path, foreign_files: ForeignFiles) -> bool:
    """Whether a leftover folder beside `out` is provably drumcat's: its staging marker names `out`, or it
    holds a whole output and nothing else. A kill while the marker was being written leaves it empty or
    cut short; that file alone, or beside a whole output (the old one, being marked for removal), is
    drumcat's too."""
    marker = _marker(candidate)
    if marker is not None:
        return marker.get("out") == str(out)
    foreign = foreign_files(candidate)
    if foreign is None:  # not a whole output: only a folder holding nothing but a cut-short marker is ours
        return _holds_only_a_cut_marker(candidate)
    return foreign in ([], [STAGING_MARKER])


def mark_as_own(folder: Path, out: Path) -> None:
    (folder / STAGING_MARKER).write_text(json.dumps({"out": str(out)}), encoding="utf-8")


def remove_own_folder(folder: Path) -> None:
    """Remove a folder drumcat made, its marker last: a kill at any moment leaves the marker (so the next
    run can prove the folder its own) or an empty folder."""
    for entry in folder.iterdir():
        if entry.name == STAGING_MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (folder / STAGING_MARKER).unlink(missing_ok=True)
    folder.rmdir()


def swap_in(staging: Path, out: Path) -> None:
    """Replace `out` with the finished folder. On Linux the two are exchanged in one atomic step
    (renameat2 RENAME_EXCHANGE), so a kill at any moment leaves the old folder or the new one at `out`;
    elsewhere the old folder is renamed aside first (a kill between the two renames leaves it there, and
    nothing at `out`). The old folder is then marked as drumcat's and removed, its marker last."""
    if not out.exists():
        staging.rename(out)
        return
    if _exchange(staging, out):
        old = staging  # now holds the old folder
    else:
        old = out.parent / f".{out.name}.drumcat-old-{secrets.token_hex(4)}"  # a new name: nothing to clobber
        out.rename(old)
        staging.rename(out)
    with _locked(old, wait=True) as still_there:
        if still_there:  # else another run's cleanup took it first, as the old folder beside `out`
            mark_as_own(old, out)
            remove_own_folder(old)


def _remove_abandoned(candidates: Iterator[Path], ours: Callable[[Path], bool],
                      remove: Callable[[Path], None]) -> list[Path]:
    """Remove each candidate no live run holds that is proven drumcat's (`ours`), or that is empty."""
    removed = []
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        with _locked(candidate, wait=False) as ours_to_handle:
            if not ours_to_handle:
                continue  # a live run is writing it, or it is already gone
            if ours(candidate):
                remove(candidate)
            elif not any(candidate.iterdir()):
                candidate.rmdir()  # killed before its marker was written: empty, nothing to lose
            else:
                continue
            removed.append(candidate)
    return removed


@contextmanager
def _new_staging_folder(out: Path, kind: str) -> Iterator[Path]:
    """A new hidden folder beside `out`, locked and marked, held locked while the block runs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.drumcat-{kind}-", dir=out.parent))
        with _locked(staging, wait=True) as still_there:
            if still_there:  # else another run's cleanup took the empty folder before it was locked: again
                mark_as_own(staging, out)
                yield staging
                return


@contextmanager
def _locked(path: Path, *, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on a folder or a file while the block runs. False when it is gone (removed by
    another run before the lock was taken) or, without `wait`, when a live run holds its lock."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield _still_at(descriptor, path)  # False: removed while this run waited for the lock
    finally:
        os.close(descriptor)  # releases the lock


def _still_at(descriptor: int, path: Path) -> bool:
    """Whether the open file or folder is still the one at `path` (not removed, nor replaced)."""
    try:
        here = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)


def _marker(folder: Path) -> dict | None:
    """A folder's staging marker; None when it is missing, or cut short by a kill while it was written."""
    try:
        marker = json.loads((folder / STAGING_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _holds_only_a_cut_marker(folder: Path) -> bool:
    """A kill while the marker was being written leaves it empty or cut short, alone in its new folder."""
    return folder.is_dir() and [entry.name for entry in folder.iterdir()] == [STAGING_MARKER]


def _move_without_replacing(source: Path, destination: Path) -> None:
    """A rename that fails when `destination` exists (a hard link, then the source unlinked); on a file
    system without hard links, a check and a rename."""
    try:
        os.link(source, destination)
    except FileExistsError:
        raise
    except OSError:
        if destination.exists() or destination.is_symlink():
            raise FileExistsError(f"{destination} exists") from None
        os.replace(source, destination)
        return
    source.unlink()


def _moved_in(staging: Path, name: str, destination: str, sha256: str) -> bool:
    """Whether this write put the file at `destination`: it holds the recorded content, and the source has
    left the staging folder or is the same file (killed between the link and the unlink). A file of equal
    content another run put there while this one's source stayed is not this write's."""
    source, target = staging / name, Path(destination)
    if not target.is_file() or file_sha256(target) != sha256:
        return False
    return not source.exists() or os.path.samefile(source, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not there."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # this process's symbols: libc's, without a library search
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0

"""Replacing an output folder whole: built in a hidden folder beside it and swapped in when complete.

`materialize` (a tree) and `kit` (a kit) write their folders this way, so a failure or a kill at any
moment leaves the old folder or the new one at `out`, never half of either, and whatever a killed run
left beside it is removed by the next run once it is proven drumcat's.

Proof of ownership is STAGING_MARKER, naming the `out` the folder was made for. A folder holds it from
birth until it is complete, and again from the moment an old folder is marked for removal until the
folder is gone (the marker is removed last). In between, the folder is a whole output whose own marker
lists every file in it: the caller's `foreign_files` says which files that marker does not vouch for.
"""

from __future__ import annotations

import ctypes
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


@contextmanager
def staging_beside(out: Path, kind: str) -> Iterator[Path]:
    """A marked hidden folder beside `out` to build into; swapped in for `out` when the block ends
    without an error, removed when it raises (the old folder at `out` untouched)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.drumcat-{kind}-", dir=out.parent))
    mark_as_own(staging, out)
    try:
        yield staging
        (staging / STAGING_MARKER).unlink()
        swap_in(staging, out)
    except BaseException:
        if staging.exists():
            mark_as_own(staging, out)
            remove_own_folder(staging)
        raise


def remove_abandoned_staging(out: Path, foreign_files: ForeignFiles) -> list[Path]:
    """Folders an interrupted run left beside `out` (an output being built, or the old one being
    removed): removed when proven drumcat's for `out` (`made_for`), or when they are empty."""
    removed = []
    for candidate in out.parent.glob(f".{out.name}.drumcat-*"):
        if made_for(candidate, out, foreign_files):
            remove_own_folder(candidate)
            removed.append(candidate)
        elif candidate.is_dir() and not any(candidate.iterdir()):
            candidate.rmdir()  # killed before its marker was written: empty, nothing to lose
            removed.append(candidate)
    return removed


def made_for(candidate: Path, out: Path, foreign_files: ForeignFiles) -> bool:
    """Whether a leftover folder beside `out` is provably drumcat's: its staging marker names `out`, or it
    holds a whole output and nothing else. A kill while the marker was being written leaves it empty or
    cut short; that file alone, or beside a whole output (the old one, being marked for removal), is
    drumcat's too."""
    try:
        return json.loads((candidate / STAGING_MARKER).read_text(encoding="utf-8")).get("out") == str(out)
    except (OSError, ValueError, AttributeError):
        pass
    foreign = foreign_files(candidate)
    if foreign is None:  # not a whole output: only a folder holding nothing but a cut-short marker is ours
        return candidate.is_dir() and [entry.name for entry in candidate.iterdir()] == [STAGING_MARKER]
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
    mark_as_own(old, out)
    remove_own_folder(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not there."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # this process's symbols: libc's, without a library search
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0

"""`drumcat scan`: walk archive roots, hash content, read audio facts into the catalog, incrementally.

A file whose size and mtime are unchanged since the last scan is not opened again. Everything learned
about a sound is keyed by its content hash, so a moved or renamed file keeps it. Archive files are only
ever opened for reading.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from drumcat.audio.files import IN_MEMORY_LIMIT, AudioReadError, read_info
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.outputs import OUTPUT_MARKERS
from drumcat.paths import catalog_text, os_path
from drumcat.storage.catalog import Catalog, execute_many, rows
from drumcat.times import iso_from_ns, utc_now
from drumcat.workers import WorkerPipeline, check_worker_count, worker_count

WRITE_BATCH = 500

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class FoundFile:
    path: str  # the catalog's text form (drumcat/paths.py): what files.path holds
    rel_path: str
    ext: str
    size: int
    mtime_ns: int
    os_path: str = ""  # the path to open, when it differs from `path` (a name that is not UTF-8)

    @property
    def opened(self) -> str:
        return self.os_path or self.path


def _found(entry: os.DirEntry, root_prefix: int, ext: str, size: int, mtime_ns: int) -> FoundFile:
    text = catalog_text(entry.path)
    return FoundFile(text, text[root_prefix:].replace(os.sep, "/"), ext, size, mtime_ns,
                     entry.path if text != entry.path else "")


@dataclass
class ScanSummary:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    missing: int = 0
    failed: int = 0
    skipped_dirs: list[str] = field(default_factory=list)
    """Folders that could not be listed (permissions) or were symlink loops; reported, not fatal."""

    def as_dict(self) -> dict[str, object]:
        return {
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "moved": self.moved,
            "missing": self.missing,
            "failed": self.failed,
            "skipped_dirs": self.skipped_dirs,
        }


EXCLUDED = "excluded"  # files.error_kind of a file whose format scan.formats no longer lists


# --- walking ----------------------------------------------------------------------------------------


def walk_audio_files(folder: Path, extensions: set[str], skipped: list[str],
                     root: Path | None = None) -> Iterator[FoundFile]:
    """Audio files below `folder`, their rel_path relative to `root` (the archive the folder lies in; the
    folder itself by default). Follows folder symlinks but visits each real folder once (no loops).

    Works on plain strings rather than pathlib: on a rescan of a large archive this loop is the cost.
    """
    visited: set[tuple[int, int]] = set()
    root_prefix = len(str(root or folder)) + 1
    stack = [str(folder)]
    # Folder symlinks are followed after every real folder: when both lead to one folder, its files are
    # catalogued under their real path and the alias is the one reported skipped.
    aliases: list[str] = []
    while stack or aliases:
        folder = stack.pop() if stack else aliases.pop(0)
        try:
            folder_stat = os.stat(folder)
            key = (folder_stat.st_dev, folder_stat.st_ino)
            if key in visited:
                skipped.append(f"{catalog_text(folder)}: already visited (symlink loop or alias)")
                continue
            visited.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            skipped.append(f"{catalog_text(folder)}: {exc.strerror or exc}")
            continue
        made = next((OUTPUT_MARKERS[e.name] for e in entries if e.name in OUTPUT_MARKERS), None)
        if made:  # a tree's links would be catalogued as more copies, and one could become a sound's path
            skipped.append(f"{catalog_text(folder)}: {made} drumcat made, not scanned (its sounds are catalogued "
                           "where they came from)")
            continue
        for entry in entries:
            found = _audio_entry(entry, root_prefix, extensions, stack, skipped, aliases)
            if found is not None:
                yield found


_NOT_REGULAR = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                stat.S_IFSOCK: "a socket"}


def _audio_entry(entry: os.DirEntry, root_prefix: int, extensions: set[str], stack: list[str],
                 skipped: list[str], aliases: list[str]) -> FoundFile | None:
    try:
        if entry.is_dir():  # follows symlinks; loops are caught by the visited set
            (aliases if entry.is_symlink() else stack).append(entry.path)
            return None
    except OSError:
        return None
    ext = os.path.splitext(entry.name)[1][1:].lower()
    if ext not in extensions:
        return None
    try:
        info = entry.stat()
    except OSError:  # broken symlink: recorded as an unreadable file
        return _found(entry, root_prefix, ext, 0, 0)
    if not stat.S_ISREG(info.st_mode):  # only regular files are read: a FIFO would hang, /dev/zero never ends
        kind = _NOT_REGULAR.get(stat.S_IFMT(info.st_mode), "not a regular file")
        skipped.append(f"{catalog_text(entry.path)}: {kind}, not read")
        return None
    size, mtime_ns = info.st_size, info.st_mtime_ns
    return _found(entry, root_prefix, ext, size, mtime_ns)


# --- reading one file (runs in worker processes) -------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    found: FoundFile
    hash: str | None
    info: dict[str, object] | None
    error_kind: str | None
    error: str | None


def read_file(found: FoundFile, algorithm: str, measure_levels: bool) -> FileResult:
    """Hash the content and read audio facts, opening the file once and only for reading."""
    path = found.opened
    try:
        if found.size <= IN_MEMORY_LIMIT:
            with open(path, "rb") as handle:
                content = handle.read()
            digest = hashlib.new(algorithm, content).hexdigest()
        else:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, algorithm).hexdigest()
            content = None
    except OSError as exc:
        return FileResult(found, None, None, "unreadable", exc.strerror or str(exc))
    if (content is not None and len(content) == 0) or found.size == 0:
        return FileResult(found, digest, None, "empty", "the file is empty (0 bytes)")
    try:
        info = read_info(Path(path), measure_levels=measure_levels, content=content)
    except AudioReadError as exc:
        return FileResult(found, digest, None, exc.kind, str(exc))
    facts = {
        "format": info.format,
        "subtype": info.subtype,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "frames": info.frames,
        "duration": round(info.duration, 6),
        "peak_db": info.peak_db,
        "rms_db": info.rms_db,
    }
    return FileResult(found, digest, facts, None, None)


READER_CRASHED = ("reading it crashed the decoder (its worker process died); check the file: another program "
                  "may read it, or convert it")


@dataclass
class FileReader:
    """`read_file` for a chunk of found files, in scan's worker processes (drumcat/workers.py)."""

    algorithm: str
    measure_levels: bool

    def warm_up(self) -> None:
        pass

    def __call__(self, chunk: list[FoundFile]) -> list[FileResult]:
        return [read_file(found, self.algorithm, self.measure_levels) for found in chunk]

    @staticmethod
    def crashed(done: list[FileResult], chunk: list[FoundFile]) -> list[FileResult]:
        return done + [FileResult(found, None, None, "decode_error", READER_CRASHED) for found in chunk]


def _read_all(
    work: list[FoundFile], config: ScanConfig, workers: int
) -> Iterator[FileResult]:
    reader = FileReader(config.hash_algorithm, config.audio_stats)
    # fork is cheap and safe here: the scanning parent imports no TensorFlow and runs no thread but the
    # progress bar's, whose locks a worker never takes (silence_worker_output).
    with WorkerPipeline(work, reader, workers, context=multiprocessing.get_context("fork"),
                        crashed=FileReader.crashed) as chunks:
        for results in chunks:
            yield from results


# --- the scan ------------------------------------------------------------------------------------------

_UPSERT_FILE = """
INSERT INTO files (root_id, path, rel_path, ext, size, mtime, mtime_ns, hash, hash_algorithm,
                   first_seen, last_seen, missing, error_kind, error)
VALUES (:root_id, :path, :rel_path, :ext, :size, :mtime, :mtime_ns, :hash, :hash_algorithm,
        :now, :now, 0, :error_kind, :error)
ON CONFLICT(path) DO UPDATE SET
    root_id = excluded.root_id, rel_path = excluded.rel_path, ext = excluded.ext, size = excluded.size,
    mtime = excluded.mtime, mtime_ns = excluded.mtime_ns, hash = excluded.hash,
    hash_algorithm = excluded.hash_algorithm, last_seen = excluded.last_seen, missing = 0,
    error_kind = excluded.error_kind, error = excluded.error
"""

_INSERT_AUDIO = """
INSERT OR IGNORE INTO audio (hash, format, subtype, sample_rate, channels, frames, duration,
                             peak_db, rms_db, read_at)
VALUES (:hash, :format, :subtype, :sample_rate, :channels, :frames, :duration, :peak_db, :rms_db, :now)
"""


def _check_algorithm(name: str) -> None:
    if name not in hashlib.algorithms_available:
        raise DrumcatError(f"scan.hash_algorithm: unknown hash algorithm {name!r}; use e.g. 'sha256'")


@dataclass(frozen=True)
class ScanTarget:
    """A folder to walk, and the archive (root) it belongs to: the folder itself, or one it lies in."""

    root_id: int
    root: Path
    folder: Path


def scan_targets(catalog: Catalog, folders: list[Path]) -> list[ScanTarget]:
    """The folders given (resolved), each as part of the scanned archive it lies in, so that scanning one
    vendor folder of an archive updates that archive, or as a new archive that takes in the archives
    inside it. A folder inside another one given with it is walked once, with the outer one."""
    unique = list(dict.fromkeys(folders))
    outermost = [f for f in unique if not any(f != other and f.is_relative_to(other) for other in unique)]
    return [ScanTarget(*_register_root(catalog, folder), folder) for folder in outermost]


def _register_root(catalog: Catalog, folder: Path) -> tuple[int, Path]:
    """The archive `folder` belongs to: (id, path). A folder in no archive becomes one; the archives inside
    it become part of it. Overlapping roots each counted the other's files as new and read them again, and a
    file deleted under the inner one was never marked missing by a scan of the outer one."""
    with catalog.connect() as conn:
        if not any(folder.is_relative_to(root) for _, root in _roots(conn)):
            conn.exec_driver_sql("INSERT INTO roots (path, added_at) VALUES (?, ?)",
                                 (catalog_text(str(folder)), utc_now()))
        _merge_nested_roots(conn)  # also those an older drumcat registered inside one another
        return next((root_id, root) for root_id, root in _roots(conn) if folder.is_relative_to(root))


def _roots(conn: Connection) -> list[tuple[int, Path]]:
    return [(root_id, Path(os_path(path))) for root_id, path in conn.exec_driver_sql("SELECT id, path FROM roots")]


def _merge_nested_roots(conn: Connection) -> None:
    """Every root inside another becomes part of the outermost one: its files are re-rooted, their rows,
    hashes and results kept, their rel_path taken from the outer root."""
    roots = sorted(_roots(conn), key=lambda item: len(item[1].parts))
    for inner_id, inner in roots:
        outer = next(((root_id, root) for root_id, root in roots if root != inner and inner.is_relative_to(root)),
                     None)
        if outer is None:
            continue
        prefix = catalog_text(str(outer[1])).rstrip("/") + "/"
        conn.exec_driver_sql("UPDATE files SET root_id = ?, rel_path = substr(path, ?) WHERE root_id = ?",
                             (outer[0], len(prefix) + 1, inner_id))  # SQLite's substr counts from 1
        conn.exec_driver_sql("DELETE FROM roots WHERE id = ?", (inner_id,))


def scan(
    catalog: Catalog,
    roots: list[Path],
    config: ScanConfig,
    *,
    on_total: Callable[[int], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> ScanSummary:
    """Scan `roots` into `catalog`. `on_total` hears how many files need reading, `on_progress` each one."""
    _check_algorithm(config.hash_algorithm)
    check_worker_count(config.workers)
    resolved = []
    for root in roots:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise DrumcatError(f"{root}: not a folder; pass the top folder of a sample archive")
        resolved.append(root)

    summary = ScanSummary()
    started = utc_now()
    with catalog.connect() as conn:
        scan_id = conn.exec_driver_sql(
            "INSERT INTO scans (started_at, roots) VALUES (?, ?) RETURNING id",
            (started, json.dumps([str(r) for r in resolved])),
        ).scalar_one()

    extensions = {ext.lower().lstrip(".") for ext in config.formats}
    work: list[tuple[int, FoundFile, bool]] = []
    targets = scan_targets(catalog, resolved)
    for target in targets:
        work.extend((target.root_id, found, is_new) for found, is_new in _plan_root(catalog, target, extensions,
                                                                                    summary))

    if on_total:
        on_total(len(work))
    new_hashes = _read_and_store(catalog, work, config, summary, on_progress)
    _count_moved(catalog, new_hashes, summary)

    with catalog.connect() as conn:
        conn.exec_driver_sql(
            "UPDATE scans SET finished_at=?, new=?, changed=?, unchanged=?, moved=?, missing=?, failed=? "
            "WHERE id=?",
            (utc_now(), summary.new, summary.changed, summary.unchanged, summary.moved,
             summary.missing, summary.failed, scan_id),
        )
        for target in targets:
            if target.folder == target.root:  # a folder inside an archive is not all of it
                conn.exec_driver_sql("UPDATE roots SET last_scan_at=? WHERE id=?", (utc_now(), target.root_id))
    return summary


def _plan_root(
    catalog: Catalog, target: ScanTarget, extensions: set[str], summary: ScanSummary
) -> list[tuple[FoundFile, bool]]:
    """Walk one folder; mark unchanged and missing files; return the files to read, each with is-new. Only
    the files below the folder can be missing: a scan of one vendor folder says nothing of the others."""
    prefix = catalog_text(str(target.folder)).rstrip("/") + "/"
    with catalog.read() as conn:
        known = {
            row["path"]: row
            for row in rows(conn, "SELECT path, ext, size, mtime_ns, missing, error_kind FROM files "
                                  "WHERE root_id=:r AND substr(path, 1, :n) = :prefix",
                            {"r": target.root_id, "n": len(prefix), "prefix": prefix})
        }
    now = utc_now()
    to_read: list[tuple[FoundFile, bool]] = []
    unchanged: list[dict[str, object]] = []
    seen: set[str] = set()
    for found in walk_audio_files(target.folder, extensions, summary.skipped_dirs, target.root):
        seen.add(found.path)
        previous = known.get(found.path)
        if previous is None:
            summary.new += 1
            to_read.append((found, True))
        elif (previous["size"] == found.size and previous["mtime_ns"] == found.mtime_ns
              and previous["error_kind"] != EXCLUDED):
            summary.unchanged += 1
            unchanged.append({"path": found.path, "now": now})
        else:
            summary.changed += 1
            to_read.append((found, False))
    gone = [path for path, row in known.items() if path not in seen and not row["missing"]]
    # A file whose format scan.formats no longer lists is excluded, not missing: it is still there.
    excluded = [{"path": p, "now": now} for p in gone if known[p]["ext"] not in extensions]
    vanished = [{"path": p, "now": now} for p in gone if known[p]["ext"] in extensions]
    summary.missing += len(vanished)
    with catalog.connect() as conn:
        execute_many(conn, "UPDATE files SET last_seen=:now, missing=0 WHERE path=:path", unchanged)
        execute_many(conn, "UPDATE files SET missing=1 WHERE path=:path", vanished)
        execute_many(conn, f"UPDATE files SET error_kind='{EXCLUDED}', error='its format is not in scan.formats' "
                           "WHERE path=:path AND error_kind IS NOT 'excluded'", excluded)
    return to_read


def _read_and_store(
    catalog: Catalog,
    work: list[tuple[int, FoundFile, bool]],
    config: ScanConfig,
    summary: ScanSummary,
    on_progress: ProgressCallback | None,
) -> list[str]:
    """Read files in worker processes; write results in batched transactions. Returns new paths' hashes."""
    root_of = {found.path: root_id for root_id, found, _ in work}
    new_paths = {found.path for _, found, is_new in work if is_new}
    new_hashes: list[str] = []
    file_rows: list[dict[str, object]] = []
    audio_rows: list[dict[str, object]] = []

    def flush() -> None:
        with catalog.connect() as conn:
            execute_many(conn, _UPSERT_FILE, file_rows)
            execute_many(conn, _INSERT_AUDIO, audio_rows)
        file_rows.clear()
        audio_rows.clear()

    now = utc_now()
    for result in _read_all([found for _, found, _ in work], config, worker_count(config.workers)):
        found = result.found
        file_rows.append({
            "root_id": root_of[found.path], "path": found.path, "rel_path": found.rel_path,
            "ext": found.ext, "size": found.size, "mtime": iso_from_ns(found.mtime_ns),
            "mtime_ns": found.mtime_ns, "hash": result.hash, "hash_algorithm": config.hash_algorithm,
            "now": now, "error_kind": result.error_kind, "error": result.error,
        })
        if result.info is not None:
            audio_rows.append({"hash": result.hash, "now": now, **result.info})
        if result.error:
            summary.failed += 1
        elif result.hash and found.path in new_paths:
            new_hashes.append(result.hash)
        if len(file_rows) >= WRITE_BATCH:
            flush()
            now = utc_now()
        if on_progress:
            on_progress(1)
    flush()
    return new_hashes


def _count_moved(catalog: Catalog, new_hashes: list[str], summary: ScanSummary) -> None:
    """A new path is a move when a now-missing file had the same content."""
    if not new_hashes:
        return
    with catalog.read() as conn:
        missing_hashes = {
            row[0] for row in conn.exec_driver_sql("SELECT DISTINCT hash FROM files WHERE missing=1")
        }
    summary.moved = sum(1 for digest in new_hashes if digest in missing_hashes)

"""`drumcat materialize`: turn any view that follows the column contract into a folder tree.

The contract: a view (or table) with a `src` column (an existing file) and a `dest` column (a relative
path inside the output folder). Other columns are allowed and ignored. The tree is built beside the
output folder and swapped in only when complete; source files are only ever read (copy mode) or linked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection

from drumcat.errors import DrumcatError, listing
from drumcat.outputs import TREE_MARKER, refuse_archive_overlap
from drumcat.paths import catalog_text, os_path
from drumcat.staging import remove_abandoned_staging, staging_beside
from drumcat.storage.catalog import Catalog, rows, scanned_archives
from drumcat.storage.rules import RuleChanges, active_model_name, rules_for_this_command
from drumcat.times import utc_now

MODES = ("symlink", "hardlink", "copy")
MANIFEST_DIR = "_manifests"
SUMMARY_FILE = "_summary.json"


@dataclass
class MaterializeSummary:
    view: str
    out: str
    mode: str
    files: int = 0
    per_folder: dict[str, int] = field(default_factory=dict)
    renamed_for_collisions: int = 0
    missing_sources: list[str] = field(default_factory=list)
    model: str | None = None
    threshold: float | None = None
    catalog: str = ""
    created_at: str = field(default_factory=utc_now)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- the contract ------------------------------------------------------------------------------------


def view_columns(conn: Connection, view: str) -> list[str]:
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = ? AND type IN ('view', 'table')", (view,)).first()
    if not exists:
        raise DrumcatError(f"view {view!r} does not exist; `drumcat views` lists the views")
    quoted = view.replace('"', '""')
    return [row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{quoted}")')]


def check_contract(conn: Connection, view: str) -> None:
    missing = [c for c in ("src", "dest") if c not in view_columns(conn, view)]
    if missing:
        raise DrumcatError(
            f"view {view!r} lacks column(s) {', '.join(missing)}; a materializable view must have a src "
            "column (the source file) and a dest column (a relative path in the output)"
        )


NAME_MAX_BYTES = 255  # what Linux, macOS and Windows file systems allow for one name
_UNWRITABLE = re.compile(r'[\\\x00-\x1f\x7f:*?"<>|]')  # a backslash, control characters, and what Windows refuses


def safe_dest(dest: object, src: object) -> PurePosixPath:
    """The destination as a safe relative path. A view's mistake (an absolute path, '..', a reserved name)
    is an error naming the row; a name that cannot be written as it is (a backslash, a newline or tab, a
    character Windows refuses, more than 255 bytes) gets a deterministic substitute (`writable_name`)."""
    text = dest if isinstance(dest, str) else None
    problem = None
    if not text or not text.strip():
        problem = "is empty"
    elif text.startswith("/") or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
        problem = "is absolute"
    else:
        parts = text.split("/")
        if any(part in ("..", ".", "") for part in parts):
            problem = "contains '..', '.' or an empty folder name"
        elif parts[0] in (MANIFEST_DIR, SUMMARY_FILE, TREE_MARKER):
            problem = f"uses a name drumcat reserves ({parts[0]})"
    if problem:
        raise DrumcatError(f"row src={src!r}: dest {dest!r} {problem}; dest must be a relative path like Kick/a.wav")
    return PurePosixPath(*(writable_name(part) for part in text.split("/")))


def writable_name(name: str) -> str:
    """`name`, or, if a file system could refuse it, the same with each such character as '_' and, past
    255 bytes, shortened with a hash of the whole name (so two long names stay two names)."""
    cleaned = _UNWRITABLE.sub("_", name)
    if len(cleaned.encode("utf-8", "surrogateescape")) <= NAME_MAX_BYTES:
        return cleaned
    stem, dot, ext = cleaned.rpartition(".") if len(cleaned.rpartition(".")[2]) <= 10 else (cleaned, "", "")
    suffix = "~" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10] + dot + ext
    budget = NAME_MAX_BYTES - len(suffix.encode("utf-8", "surrogateescape"))
    encoded = stem.encode("utf-8", "surrogateescape")[:budget]
    return encoded.decode("utf-8", "ignore") + suffix


def resolve_collisions(pairs: list[tuple[str, PurePosixPath]]) -> tuple[list[tuple[str, PurePosixPath]], int]:
    """Give every file a distinct destination; later sources (by path) get a `_2`, `_3`… suffix.

    Compared case-insensitively, so the tree is the same on case-insensitive file systems.
    """
    taken: set[str] = set()
    resolved, renamed = [], 0
    for src, dest in sorted(pairs, key=lambda pair: (str(pair[1]).casefold(), pair[0])):
        candidate, number = dest, 1
        while str(candidate).casefold() in taken:
            number += 1
            candidate = dest.with_name(writable_name(f"{dest.stem}_{number}{dest.suffix}"))
        if number > 1:
            renamed += 1
        taken.add(str(candidate).casefold())
        resolved.append((src, candidate))
    return resolved, renamed


# --- safety ------------------------------------------------------------------------------------------


def check_output_location(catalog: Catalog, out: Path) -> None:
    """Refuse an output inside or around a scanned archive, a file, and a folder drumcat did not make."""
    refuse_archive_overlap(out, scanned_archives(catalog))
    if out.exists() and not out.is_dir():
        raise DrumcatError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        foreign = files_drumcat_did_not_make(out)
        if foreign is None:
            raise DrumcatError(f"{out}: exists, is not empty and is not a drumcat tree (no {TREE_MARKER}); "
                               "drumcat replaces its own trees only: choose a new or empty folder")
        if foreign:
            listed = listing(foreign)
            raise DrumcatError(f"{out}: holds files drumcat did not make ({listed}); move them out of the tree "
                               "first: a tree is rebuilt whole, and drumcat never deletes a file it did not make")


def files_drumcat_did_not_make(tree: Path) -> list[str] | None:
    """The files in `tree` that its marker does not list (None: not a drumcat tree at all). Walks with
    os.walk on strings: a tree of 50,000 files is checked in a tenth of a second."""
    try:
        made = set(json.loads((tree / TREE_MARKER).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    made.update((TREE_MARKER, SUMMARY_FILE))
    prefix = len(str(tree)) + 1
    foreign = []
    for folder, subfolders, names in os.walk(tree):
        relative_folder = folder[prefix:]
        if relative_folder == MANIFEST_DIR:
            continue
        for name in names:
            relative = f"{relative_folder}/{name}" if relative_folder else name
            if relative not in made:
                foreign.append(relative)
        # a symlinked folder inside a tree is not drumcat's (it makes only files)
        foreign += [f"{relative_folder}/{d}" if relative_folder else d for d in subfolders
                    if os.path.islink(os.path.join(folder, d))]
    return sorted(foreign)


# --- building ----------------------------------------------------------------------------------------


def _place(src: str, target: Path, mode: str) -> None:
    if mode == "symlink":
        os.symlink(src, target)
    elif mode == "hardlink":
        try:
            os.link(src, target)
        except OSError as exc:
            raise DrumcatError(
                f"{src}: cannot hardlink into {target.parent} ({exc.strerror}); hardlinks need the same file "
                "system: use --mode symlink or --mode copy"
            ) from exc
    else:
        shutil.copyfile(src, target)  # reads the source; copies content only, never touches the original


def _build_tree(
    staging: Path, placements: list[tuple[str, PurePosixPath]], mode: str, on_progress: Callable[[int], None] | None
) -> None:
    made: set[Path] = set()
    for src, dest in placements:
        target = staging / dest
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        _place(src, target, mode)
        if on_progress:
            on_progress(1)


def _write_manifests(staging: Path, placements: list[tuple[str, PurePosixPath]], summary: MaterializeSummary) -> None:
    by_folder: dict[str, list[str]] = defaultdict(list)
    for src, dest in placements:
        folder = dest.parts[0] if len(dest.parts) > 1 else "."
        by_folder[folder].append(f"{dest}\t{catalog_text(src)}")
    manifests = staging / MANIFEST_DIR
    manifests.mkdir()
    for folder, lines in sorted(by_folder.items()):
        name = "_root" if folder == "." else folder
        (manifests / f"{name}.txt").write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    (staging / SUMMARY_FILE).write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    marker = {"made_by": "drumcat materialize", "catalog": summary.catalog, "view": summary.view,
              "files": sorted(str(dest) for _, dest in placements)}
    (staging / TREE_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


def materialize(
    catalog: Catalog,
    view: str,
    out: Path,
    *,
    mode: str = "symlink",
    changes: RuleChanges | None = None,
    allow_empty: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> MaterializeSummary:
    """Build the tree of `view` at `out`, in a staging folder swapped in when complete. An existing tree
    is replaced only if drumcat made it and holds nothing else, and not by an empty one (allow_empty)."""
    if mode not in MODES:
        raise DrumcatError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    out = Path(out).expanduser().resolve()
    remove_abandoned_staging(out, files_drumcat_did_not_make)
    check_output_location(catalog, out)
    summary = MaterializeSummary(view=view, out=str(out), mode=mode, catalog=str(catalog.path.resolve()))
    with rules_for_this_command(catalog, changes) as conn:
        near = conn.exec_driver_sql("SELECT dedup FROM rules").scalar() == "near"
    if near:  # the groups must be current before a tree keeps one sound of each
        from drumcat.commands.near_duplicates import find_near_duplicates

        find_near_duplicates(catalog)
    with rules_for_this_command(catalog, changes) as conn:
        check_contract(conn, view)
        selected = rows(conn, 'SELECT src, dest FROM "{}"'.format(view.replace('"', '""')))
        summary.model = active_model_name(conn)
        summary.threshold = conn.exec_driver_sql("SELECT threshold FROM rules").scalar()

    pairs = []
    for row in selected:
        dest = safe_dest(row["dest"], row["src"])
        if not isinstance(row["src"], str) or not os.path.isfile(os_path(row["src"])):
            summary.missing_sources.append(str(row["src"]))
            continue
        pairs.append((os.path.abspath(os_path(row["src"])), dest))
    placements, summary.renamed_for_collisions = resolve_collisions(pairs)
    summary.files = len(placements)
    summary.per_folder = dict(sorted(Counter(
        dest.parts[0] if len(dest.parts) > 1 else "." for _, dest in placements).items()))
    if not placements and out.is_dir() and any(out.iterdir()) and not allow_empty:
        raise DrumcatError(f"view {view!r} gives no files, and {out} holds a tree: it is kept (a mistyped "
                           "--catalog or view?); pass --allow-empty to replace it with an empty tree")
    if on_total:
        on_total(len(placements))

    with staging_beside(out, "new") as staging:  # a failure leaves the previous tree at `out` untouched
        _build_tree(staging, placements, mode, on_progress)
        _write_manifests(staging, placements, summary)
    return summary

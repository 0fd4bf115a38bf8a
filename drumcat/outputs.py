"""The folders drumcat writes outside the catalog, and the marker file that says a folder is one.

Only drumcat writes these markers. A tree (`materialize`) holds TREE_MARKER, listing the catalog it came
from and every file it made; a tree being built holds STAGING_MARKER; a kit (`kit`) holds KIT_MARKER,
listing its files. drumcat replaces such a folder, and only the files its marker lists; `scan` does not
read one, since its files are links to or copies of sounds the catalog already has.
"""

from __future__ import annotations

import os
from pathlib import Path

from drumcat.errors import DrumcatError

TREE_MARKER = ".drumcat-tree.json"
STAGING_MARKER = ".drumcat-staging.json"
KIT_MARKER = ".drumcat-kit.json"
OUTPUT_MARKERS = {TREE_MARKER: "a tree", STAGING_MARKER: "a tree being built", KIT_MARKER: "a kit"}


def refuse_archive_overlap(out: Path, archives: list[Path]) -> None:
    """Refuse an output (a tree, a kit, an exported file) inside a scanned archive, real paths compared so
    that a symlink cannot lead there, and a folder around one: drumcat adds no file to an archive and
    changes none, and the next scan would catalog what it wrote as new sounds."""
    real = out.resolve()
    for root in (archive.resolve() for archive in archives):
        if real == root or real.is_relative_to(root):
            raise DrumcatError(f"{out}: inside the scanned archive {root}; choose a place outside every archive")
        if root.is_relative_to(real):
            raise DrumcatError(f"{out}: contains the scanned archive {root}; choose a place outside every archive")


def files_below(folder: Path) -> set[str]:
    """Every file below `folder`, as paths relative to it: what an output folder holds, to compare with
    what drumcat wrote there."""
    return {str(Path(root, name).relative_to(folder)) for root, _, names in os.walk(folder) for name in names}

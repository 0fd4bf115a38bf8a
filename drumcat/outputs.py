"""The folders drumcat writes outside the catalog, and the marker file that says a folder is one.

Only drumcat writes these markers. A tree (`materialize`) holds TREE_MARKER, listing the catalog it came
from and every file it made; a tree being built holds STAGING_MARKER; a kit (`kit`) holds KIT_MARKER,
listing its files. drumcat replaces such a folder, and only the files its marker lists; `scan` does not
read one, since its files are links to or copies of sounds the catalog already has.
"""

from __future__ import annotations

TREE_MARKER = ".drumcat-tree.json"
STAGING_MARKER = ".drumcat-staging.json"
KIT_MARKER = ".drumcat-kit.json"
OUTPUT_MARKERS = {TREE_MARKER: "a tree", STAGING_MARKER: "a tree being built", KIT_MARKER: "a kit"}

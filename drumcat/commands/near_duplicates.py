"""Near-duplicate groups: which sounds of the catalog are one recording (drumcat/audio/fingerprint.py and
pair_search.py).

`find_near_duplicates` fingerprints the sounds that have no fingerprint yet (worker processes decode
them: 0.2 core-ms a sound, paid once per sound and only when near-duplicates are asked for, so
`drumcat infer` stays as fast as it was), then compares the sounds not compared before with all the others.
Candidate pairs come from matrix products of coarse unit vectors (an 8 x 10 summary of each fingerprint; a
pair needs a cosine of at least 0.95, lengths within 20% of each other and level sums that an exact bound
lets within reach); each candidate is then checked with the full fingerprint distance. Pairs under the
threshold are stored (near_duplicate_pairs: a pair of content hashes stays one recording), the sounds
compared are recorded (near_duplicate_compared), and every pair found so far between present sounds is
joined into groups (union-find), numbered in order of their first path. Each group keeps as its
representative the best copy: lossless before lossy, then 24 bits or more before 16 and less,
then the oldest file (a converted copy is made after its source; a resampled copy has a "higher" rate
but no more in it), then the first path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection

from drumcat.audio.files import AudioReadError, decode
from drumcat.audio.fingerprint import BANDS, FRAMES, RECIPE, as_db, distance, fingerprints
from drumcat.audio.pair_search import COMPARISON, ComparedBlock, compared_blocks
from drumcat.model.pipeline import Chunk
from drumcat.storage.catalog import Catalog, execute_many, rows
from drumcat.times import utc_now
from drumcat.workers import WorkerPipeline, worker_count

RECIPE_ID = json.dumps({"recipe": RECIPE.as_dict(), "bands": BANDS, "frames": FRAMES}, sort_keys=True)
# Which pairs a regroup keeps depends on the fingerprints and the thresholds: pairs stored under another digest
# (a changed recipe or threshold) are found again, not reused.
COMPARISON_ID = hashlib.sha256(json.dumps({"fingerprint": RECIPE_ID, **COMPARISON}, sort_keys=True).encode()
                               ).hexdigest()[:16]
LOSSLESS = {"WAV", "AIFF", "FLAC"}
# 24 bits and more are all transparent: among them, the oldest file (the source of the others) wins
DEPTH = {"DOUBLE": 2, "FLOAT": 2, "PCM_32": 2, "PCM_24": 2, "PCM_16": 1}
STORE_EVERY_S = 5.0  # how often a comparison under way records its progress
_DECODE_SECONDS = RECIPE.clip_seconds + 0.1  # the fingerprint's window after an onset that may come late


@dataclass
class FingerprintProcessor:
    """Decode and fingerprint a chunk of (hash, path) items (run in worker processes)."""

    def warm_up(self) -> None:
        fingerprints([np.zeros(64, dtype=np.float32)], RECIPE.sample_rate)

    def __call__(self, items: list[tuple[str, str]]) -> Chunk:
        """The chunk's fingerprints as its features, one row per hash."""
        hashes, clips, errors = [], [], []
        for digest, path in items:
            try:
                clips.append(decode(path, RECIPE.sample_rate, max_seconds=1.0 + _DECODE_SECONDS))
                hashes.append(digest)
            except (AudioReadError, OSError) as exc:
                errors.append((digest, path, str(exc)))
        return Chunk(hashes, errors, features=fingerprints(clips, RECIPE.sample_rate))


def update_fingerprints(catalog: Catalog, *, workers: int = 0,
                        on_total: Callable[[int], None] | None = None,
                        on_progress: Callable[[int], None] | None = None) -> int:
    """Fingerprint every present sound that has none for this recipe; returns how many were added."""
    with catalog.read() as conn:
        # Each sound's first path, the file unique_files shows, grouping only the files of sounds without a
        # fingerprint: through unique_files, every file of the catalog was grouped first (0.5 s at 100,000)
        pending = [(r["hash"], r["path"]) for r in rows(conn, """
            SELECT p.hash, min(p.path) AS path FROM present_files p WHERE NOT EXISTS
            (SELECT 1 FROM fingerprints f WHERE f.hash = p.hash AND f.recipe = :r) GROUP BY p.hash ORDER BY path""",
                                                         {"r": RECIPE_ID})]
    added = 0
    with WorkerPipeline(pending, FingerprintProcessor(), worker_count(workers),
                        crashed=Chunk.with_crashed) as chunks:
        if on_total:  # once the workers run: a progress bar's thread started before them would make them spawn
            on_total(len(pending))
        for chunk in chunks:
            now = utc_now()
            with catalog.connect() as conn:
                execute_many(conn, "INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?)",
                             [(h, p.tobytes(), RECIPE_ID, now)
                              for h, p in zip(chunk.hashes, chunk.features, strict=True)])
            added += len(chunk.hashes)
            if on_progress:
                on_progress(len(chunk.hashes) + len(chunk.errors))
    return added


def groups_of(count: int, pairs: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Connected components of the pairs (union-find), only those of two or more members."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for i in range(count):
        members.setdefault(root(i), []).append(i)
    return {r: m for r, m in members.items() if len(m) > 1}


def quality(row: dict[str, Any]) -> tuple:
    """Sort key, best copy first: lossless, then sample depth, then the oldest file, then the path."""
    return (row["format"] not in LOSSLESS, -DEPTH.get(row["subtype"] or "", 0), row["mtime_ns"], row["path"])


# The fingerprinted present sounds, in the fingerprints' own order (their key): grouping the files by hash as
# unique_files does, to order them by path, took two thirds of reading them
_PRESENT = """FROM fingerprints f LEFT JOIN audio a ON a.hash = f.hash
              WHERE f.recipe = :r AND EXISTS (SELECT 1 FROM present_files p WHERE p.hash = f.hash)"""
_COMPARED_ONLY = """FROM near_duplicate_compared c JOIN fingerprints f ON f.hash = c.hash AND f.recipe = :r
                    LEFT JOIN audio a ON a.hash = c.hash
                    WHERE c.comparison = :c AND NOT EXISTS (SELECT 1 FROM present_files p WHERE p.hash = c.hash)"""
_IS_COMPARED = "EXISTS (SELECT 1 FROM near_duplicate_compared c WHERE c.comparison = :c AND c.hash = f.hash)"


@dataclass
class Fingerprinted:
    """The sounds a regroup compares, one row each: the present ones in order of hash, then the ones compared
    by an earlier run whose files are gone (a new sound is compared with them too, so that the pair is
    known if they come back)."""

    hashes: list[str]
    prints: np.ndarray  # uint8, BANDS * FRAMES a row
    lengths: np.ndarray  # seconds, 0 when unknown
    compared: np.ndarray  # bool: compared with every other compared sound by an earlier run
    present: int  # the first `present` rows are present sounds

    @property
    def new(self) -> np.ndarray:
        """Which rows this run compares with all the others."""
        return ~self.compared


def fingerprinted_sounds(conn: Connection) -> Fingerprinted:
    """Every fingerprinted present sound, then every compared sound no longer present. Read row by row into
    arrays sized by counts in the same transaction: a million sounds hold 1.3 GB of fingerprints, and as
    rows of Python objects they took as much again."""
    keys = {"r": RECIPE_ID, "c": COMPARISON_ID}
    present = conn.exec_driver_sql(f"SELECT count(*) {_PRESENT}", keys).scalar() or 0
    gone = conn.exec_driver_sql(f"SELECT count(*) {_COMPARED_ONLY}", keys).scalar() or 0
    sounds = Fingerprinted([], np.empty((present + gone, BANDS * FRAMES), dtype=np.uint8),
                           np.empty(present + gone), np.ones(present + gone, dtype=bool), present)
    found = itertools.chain(
        conn.exec_driver_sql(f"SELECT f.hash, f.fingerprint, a.duration, {_IS_COMPARED} {_PRESENT} ORDER BY f.hash",
                             keys),
        conn.exec_driver_sql(f"SELECT c.hash, f.fingerprint, a.duration, 1 {_COMPARED_ONLY} ORDER BY c.hash", keys))
    for index, (digest, fingerprint, duration, compared) in enumerate(found):
        sounds.hashes.append(digest)
        sounds.prints[index] = np.frombuffer(fingerprint, dtype=np.uint8)
        sounds.lengths[index] = duration or 0.0
        sounds.compared[index] = bool(compared)
    return sounds


def stored_pairs(conn: Connection, index_of: dict[str, int]) -> list[tuple[int, int]]:
    """The pairs found by earlier runs whose sounds are both among `index_of`'s, as row indices."""
    found = conn.exec_driver_sql("SELECT hash_a, hash_b FROM near_duplicate_pairs WHERE comparison = ?",
                                 (COMPARISON_ID,))
    return [(index_of[a], index_of[b]) for a, b in found if a in index_of and b in index_of]


def store_comparison(catalog: Catalog, sounds: Fingerprinted, blocks: list[ComparedBlock]) -> None:
    """Record the pairs these blocks found and their sounds as compared, in one transaction: a run stopped
    later resumes after them."""
    now = utc_now()
    with catalog.connect() as conn:
        execute_many(conn, "INSERT OR REPLACE INTO near_duplicate_pairs VALUES (?, ?, ?, ?)",
                     [(COMPARISON_ID, *sorted((sounds.hashes[a], sounds.hashes[b])), d)
                      for block in blocks for (a, b), d in block.close.items()])
        execute_many(conn, "INSERT OR IGNORE INTO near_duplicate_compared VALUES (?, ?, ?)",
                     [(COMPARISON_ID, sounds.hashes[i], now) for block in blocks for i in block.sounds.tolist()])


_COMPARISON_TABLES = ("near_duplicate_pairs", "near_duplicate_compared")  # both keyed by comparison first


def forget_comparisons(catalog: Catalog) -> None:
    """Drop every stored pair and compared sound: the next regroup compares the whole catalog again."""
    with catalog.connect() as conn:
        for table in _COMPARISON_TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")


def forget_other_comparisons(catalog: Catalog) -> None:
    """Drop the pairs and compared sounds stored under another comparison (a recipe or threshold drumcat no
    longer uses): never read again, they would hold as much room as the current ones. Asked as two ranges of
    the key, so that the index finds them: `!=` scanned every row, 0.12 s a run at a million sounds."""
    with catalog.connect() as conn:
        for table in _COMPARISON_TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE comparison < ? OR comparison > ?",
                                 (COMPARISON_ID, COMPARISON_ID))


def compare_new_sounds(catalog: Catalog, sounds: Fingerprinted,
                       on_compared: Callable[[int], None] | None = None) -> tuple[list[tuple[int, int]], int]:
    """Compare the sounds not compared before with all the others, storing what is found every few seconds
    (a first run on a large catalog takes minutes; stopped, the next run goes on where it was); returns the
    pairs found, as row indices, and how many candidates the coarse search found."""
    pending: list[ComparedBlock] = []
    found: list[tuple[int, int]] = []
    candidates, stored_at = 0, time.monotonic()
    for block in compared_blocks(sounds.prints, sounds.lengths, new=sounds.new):
        pending.append(block)
        found.extend(block.close)
        candidates += block.candidates
        if time.monotonic() - stored_at >= STORE_EVERY_S:
            store_comparison(catalog, sounds, pending)
            pending, stored_at = [], time.monotonic()
        if on_compared:
            on_compared(len(block.sounds))
    store_comparison(catalog, sounds, pending)
    return found, candidates


def copy_facts(conn: Connection, hashes: list[str]) -> dict[str, dict[str, Any]]:
    """What `quality` ranks copies by, for these sounds only (the members of groups)."""
    facts: dict[str, dict[str, Any]] = {}
    for start in range(0, len(hashes), 500):  # under SQLite's limit on a statement's parameters
        some = hashes[start:start + 500]
        marks = ", ".join("?" * len(some))
        for row in conn.exec_driver_sql(f"""
                SELECT u.hash, u.path, a.format, a.subtype,
                       (SELECT min(p.mtime_ns) FROM present_files p WHERE p.hash = u.hash) AS mtime_ns
                FROM unique_files u LEFT JOIN audio a ON a.hash = u.hash WHERE u.hash IN ({marks})""",
                                        tuple(some)).mappings():
            facts[row["hash"]] = dict(row)
    return facts


def find_near_duplicates(catalog: Catalog, *, workers: int = 0, on_total: Callable[[int], None] | None = None,
                         on_progress: Callable[[int], None] | None = None,
                         on_compare_total: Callable[[int], None] | None = None,
                         on_compared: Callable[[int], None] | None = None) -> dict[str, int]:
    """Fingerprint what is new, compare the sounds not compared before with all the others, regroup the
    present sounds from every pair found so far and store the groups; returns counts. `on_total` and
    `on_progress` follow the fingerprinting (files), `on_compare_total` and `on_compared` the comparison
    (new sounds): a first run on a million sounds would take about 23 minutes (README, Performance), a run
    after a scan that added a pack about the pack's share of it."""
    added = update_fingerprints(catalog, workers=workers, on_total=on_total, on_progress=on_progress)
    forget_other_comparisons(catalog)
    with catalog.read() as conn:  # one transaction: the facts are of the sounds fingerprinted_sounds read
        sounds = fingerprinted_sounds(conn)
        present = {digest: i for i, digest in enumerate(sounds.hashes[:sounds.present])}
        known = stored_pairs(conn, present)
        to_compare = int(sounds.new.sum())
        if on_compare_total:
            on_compare_total(to_compare)
        found, candidates = compare_new_sounds(catalog, sounds, on_compared)
        pairs = known + [(a, b) for a, b in found if a < sounds.present and b < sounds.present]
        groups = list(groups_of(sounds.present, pairs).values())
        facts = copy_facts(conn, [sounds.hashes[i] for members in groups for i in members])
    ranked = [sorted(members, key=lambda i: quality(facts[sounds.hashes[i]])) for members in groups]
    ranked.sort(key=lambda members: min(facts[sounds.hashes[i]]["path"] for i in members))  # numbered by path
    records = []
    for group_id, (best, *others) in enumerate(ranked, start=1):
        records.append((sounds.hashes[best], group_id, 1, 0.0))
        records += [(sounds.hashes[i], group_id, 0, round(distance(as_db(sounds.prints[best]),
                                                                   as_db(sounds.prints[i])), 3)) for i in others]
    with catalog.connect() as conn:
        conn.exec_driver_sql("DELETE FROM near_duplicate_groups")
        execute_many(conn, "INSERT INTO near_duplicate_groups VALUES (?, ?, ?, ?)", records)
    return {"fingerprinted": added, "sounds": sounds.present, "compared": to_compare,
            "candidates": candidates, "groups": len(groups), "in_groups": len(records)}


def listed_groups(catalog: Catalog, limit: int) -> list[dict[str, Any]]:
    """The members of the first `limit` groups, as `drumcat duplicates` lists them: the representative first."""
    with catalog.read() as conn:
        return rows(conn, "SELECT group_id, members, representative, round(distance_db, 2) AS distance_db, path "
                          "FROM near_duplicates WHERE group_id <= :n", {"n": limit})

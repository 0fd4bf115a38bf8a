"""Which fingerprints of many are one recording, without measuring every pair: the pairs within
MAX_DISTANCE_DB (drumcat/audio/fingerprint.py's `distance`) found through three filters, each cheaper than
the next. A candidate search of matrix products of coarse summaries, among sounds of alike durations and
overlapping level ranges; an exact bound on the level sums (`could_be_close`); then the distance itself,
measured in batches on the quantized values. The second and third never drop a pair `distance` keeps; the
first is measured for recall (bench/near_duplicates.py). `close_pairs` is the whole; `compared_blocks`
hands it over a block at a time, so that a regroup can store its progress and resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from drumcat.audio.fingerprint import (
    AUDIBLE_DB,
    AUDIBLE_FROM,
    BANDS,
    FRAMES,
    MAX_DISTANCE_DB,
    SHIFTS,
    STEP_DB,
    aligned,
    as_db,
    distance,
)

# Candidate pairs, before the full distance: the cosine of their coarse summaries, and their durations' ratio.
CANDIDATE_COSINE = 0.95
LENGTH_RATIO = 1.2
LENGTH_SLACK_S = 0.05  # and this much more: 20 ms of silence before a 90 ms hit make it 1.22 times as long
SHORTEST_S = 1e-3  # a duration below this (or unknown, 0) counts as this in the ratio

COMPARISON = {"max_distance_db": MAX_DISTANCE_DB, "audible_db": AUDIBLE_DB, "shifts": SHIFTS,
              "candidate_cosine": CANDIDATE_COSINE, "length_ratio": LENGTH_RATIO,
              "length_slack_s": LENGTH_SLACK_S, "shortest_s": SHORTEST_S}
"""What decides whether two fingerprints are one recording: pairs stored under other values are not reused."""


SOUNDS_AT_ONCE = 8192  # fingerprints converted at a time: 40 MB as float32, where a million would be 5 GB


def coarse(prints: np.ndarray) -> np.ndarray:
    """Unit vectors of an 8-band x 10-frame summary (in dB above the floor): the candidate search space."""
    return np.concatenate([np.zeros((0, 80), dtype=np.float32)] + [
        _coarse(prints[start:start + SOUNDS_AT_ONCE]) for start in range(0, len(prints), SOUNDS_AT_ONCE)])


def _coarse(prints: np.ndarray) -> np.ndarray:
    # Summed as integers, one axis at a time (a float mean over two strided axes took three times as long): the
    # sums of 16 steps are exact in float32, and so are the means, the same as the float mean gave.
    bands = prints.reshape(len(prints), 8, BANDS // 8, FRAMES).sum(axis=2, dtype=np.uint16)
    cells = bands.reshape(len(prints), 8, 10, FRAMES // 10).sum(axis=3, dtype=np.uint16)
    summary = cells.reshape(len(prints), -1).astype(np.float32) / (BANDS // 8 * FRAMES // 10)
    norms = np.linalg.norm(summary, axis=1, keepdims=True)
    return summary / np.where(norms > 0, norms, 1)


BLOCK_CELLS = 1 << 24  # similarities computed at once by the candidate search: 64 MB, whatever the catalog's size
BLOCK_ROWS = 1024  # sounds per block of the search: what a regroup stores as compared, and resumes after
GROUP_ROWS = 64  # rows of similar level totals multiplied at once against the columns they can reach


@dataclass
class SearchBlock:
    """A block of the candidate search: the new sounds it compared with every sound they could be one
    recording with, and its candidate pairs."""

    sounds: np.ndarray  # the caller's indices
    pairs: np.ndarray  # (a, b) rows, a < b


def candidate_blocks(vectors: np.ndarray, lengths: np.ndarray, block_cells: int = BLOCK_CELLS,
                     new: np.ndarray | None = None, ranges: LevelRanges | None = None,
                     block_rows: int = BLOCK_ROWS, slack: float = LENGTH_SLACK_S) -> Iterator[SearchBlock]:
    """The pairs whose coarse summaries are close, durations alike and (given `ranges`) level ranges
    overlapping, a block of the search at a time. The sounds are taken from the shortest, `block_rows` at a
    time, and a block is compared only with the sounds after it that are at most LENGTH_RATIO times as long as
    its longest, and `slack` seconds more: with durations spread over a few octaves, a fraction of the catalog.
    The similarities computed at once stay within `block_cells` (4,096 rows against every sound made 16 GB for a
    million sounds), and the caller can drop a block's pairs before the next: a catalog's candidates grow with
    the square of its size. Once a block is handed over, its sounds have met every sound they can pair with (the
    shorter ones in earlier blocks), so a caller can record them as compared and resume after the last block it
    recorded.

    `new` (a mask; default every sound) limits the search to the pairs with at least one new sound: the
    pairs among the others were searched by an earlier run."""
    order = np.argsort(lengths, kind="stable")
    vectors, lengths = vectors[order], lengths[order]
    is_new = np.ones(len(order), dtype=bool) if new is None else np.asarray(new, dtype=bool)[order]
    ranges = None if ranges is None else ranges.take(order)
    for start in range(0, len(vectors), block_rows):
        stop = min(start + block_rows, len(vectors))
        reach = (LENGTH_RATIO * max(lengths[stop - 1], SHORTEST_S) + slack) * (1 + 1e-9)  # the test decides
        rows, columns = np.arange(start, stop), np.arange(start, int(np.searchsorted(lengths, reach, "right")))
        if is_new[rows].all():  # the whole block against everything in reach (every block, on a first run)
            i, j = _alike_summaries(vectors, rows, columns, ranges, block_cells)
        else:  # its new sounds against everything in reach, the others against the new sounds in reach
            fresh_i, fresh_j = _alike_summaries(vectors, rows[is_new[rows]], columns, ranges, block_cells)
            known_i, known_j = _alike_summaries(vectors, rows[~is_new[rows]], columns[is_new[columns]], ranges,
                                                block_cells)
            i, j = np.concatenate([fresh_i, known_i]), np.concatenate([fresh_j, known_j])
        keep = (i < j) & durations_alike(lengths[i], lengths[j], slack)
        pairs = np.sort(np.stack([order[i[keep]], order[j[keep]]], axis=1), axis=1)  # a < b in the caller's indices
        yield SearchBlock(sounds=order[start:stop][is_new[start:stop]], pairs=pairs)


def _alike_summaries(vectors: np.ndarray, rows: np.ndarray, columns: np.ndarray, ranges: LevelRanges | None,
                     block_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of `rows` x `columns` whose summaries are within CANDIDATE_COSINE and, given `ranges`, whose
    level ranges overlap. The rows are multiplied a group at a time. With `ranges`, rows and columns are
    sorted by where their first range starts, so a group of rows holds similar level totals and reaches
    only a slice of the columns: those starting no later than the group's highest end and no earlier than
    its lowest start less the widest column range (any earlier one ends before that start)."""
    if ranges is not None:
        rows = rows[np.argsort(ranges.low[0, rows], kind="stable")]
        columns = columns[np.argsort(ranges.low[0, columns], kind="stable")]
        starts = ranges.low[0, columns]
        widest = float((ranges.high[0, columns] - starts).max(initial=0.0))
    column_vectors = vectors[columns]
    group = max(1, min(GROUP_ROWS, block_cells // max(len(columns), 1)))
    found_i, found_j = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for first in range(0, len(rows), group):
        some = rows[first:first + group]
        lowest, highest = 0, len(columns)
        if ranges is not None:
            lowest = int(np.searchsorted(starts, ranges.low[0, some].min() - widest, "left"))
            highest = int(np.searchsorted(starts, ranges.high[0, some].max(), "right"))
        r, k = np.nonzero(vectors[some] @ column_vectors[lowest:highest].T >= CANDIDATE_COSINE)
        i, j = some[r], columns[lowest + k]
        if ranges is not None:  # a group at a time: the pairs of a whole block before this test took memory
            keep = ranges.overlap(i, j)
            i, j = i[keep], j[keep]
        found_i.append(i)
        found_j.append(j)
    return np.concatenate(found_i), np.concatenate(found_j)


def candidate_pairs(vectors: np.ndarray, lengths: np.ndarray, block_cells: int = BLOCK_CELLS,
                    new: np.ndarray | None = None, ranges: LevelRanges | None = None,
                    block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Every pair `candidate_blocks` finds, in row-major order."""
    blocks = candidate_blocks(vectors, lengths, block_cells, new=new, ranges=ranges, block_rows=block_rows)
    pairs = np.concatenate([np.zeros((0, 2), dtype=np.int64), *(block.pairs for block in blocks)])
    return pairs[row_major_order(pairs)]


def row_major_order(pairs: np.ndarray) -> np.ndarray:
    """The order that sorts (a, b) rows by a, then b."""
    return np.lexsort((pairs[:, 1], pairs[:, 0]))


def durations_alike(a: np.ndarray, b: np.ndarray, slack: float = LENGTH_SLACK_S) -> np.ndarray:
    """Whether the longer of two durations (seconds) is at most LENGTH_RATIO times the shorter plus `slack`: a
    ratio alone kept a short hit from its copy with a little more or less silence before it."""
    return np.maximum(a, b) <= LENGTH_RATIO * np.maximum(np.minimum(a, b), SHORTEST_S) + slack


NEAR_THRESHOLD_DB = 0.05  # batched distances this near MAX_DISTANCE_DB are measured again by distance() itself:
# far wider than where its float32 sums and the batched ones differ (3e-6 dB on the bench archive's pairs)
PAIRS_AT_ONCE = 1024  # pairs per step: a few arrays of 1-2 MB


def batched_distances(prints: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """`distance` for many (a, b) pairs at once, on the quantized values: the same audible cells (a cell is
    audible from the quantized value AUDIBLE_FROM on, as as_db makes it) and the same means, up to
    float rounding (1e-5 dB), in a few microseconds a pair where `distance` takes 55."""
    result = np.empty(len(pairs))
    cells = prints.reshape(len(prints), BANDS, FRAMES)
    for start in range(0, len(pairs), PAIRS_AT_ONCE):
        chunk = pairs[start:start + PAIRS_AT_ONCE]
        result[start:start + len(chunk)] = _quantized_distances(cells[chunk[:, 0]], cells[chunk[:, 1]])
    return result


def _quantized_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    best = np.full(len(a), np.inf)
    for shift in SHIFTS:
        x, y = aligned(a, b, shift)
        louder = np.maximum(x, y)
        audible = louder >= AUDIBLE_FROM
        steps = np.subtract(louder, np.minimum(x, y))  # |x - y| in uint8, without a wider copy of either
        np.multiply(steps, audible, out=steps)
        count = audible.sum(axis=(1, 2), dtype=np.int32)
        total = steps.sum(axis=(1, 2), dtype=np.int32)
        best = np.minimum(best, np.where(count > 0, total * STEP_DB / np.maximum(count, 1), np.inf))
    return best


@dataclass
class Levels:
    """What `could_be_close` bounds a pair's distance by. For each fingerprint and each of the three frame
    ranges a shift of 0, +1 and -1 keeps of one side of a pair (`aligned`: all frames, all but the first,
    all but the last): per band, the sum of each cell's level above the audible floor (AUDIBLE_FROM - 1,
    where `distance` stops comparing), their total over the bands, and how many cells are audible."""

    sums: np.ndarray  # (sounds, 3, BANDS) int16
    totals: np.ndarray  # (sounds, 3) int32
    audible: np.ndarray  # (sounds, 3) int16


def levels(prints: np.ndarray) -> Levels:
    """The Levels of every fingerprint, SOUNDS_AT_ONCE at a time."""
    parts = [_levels(prints[start:start + SOUNDS_AT_ONCE]) for start in range(0, len(prints), SOUNDS_AT_ONCE)]
    empty = _levels(np.zeros((0, BANDS * FRAMES), dtype=np.uint8))
    return Levels(*(np.concatenate([getattr(empty, field)] + [getattr(part, field) for part in parts])
                    for field in ("sums", "totals", "audible")))


def _levels(prints: np.ndarray) -> Levels:
    floor = np.uint8(AUDIBLE_FROM - 1)
    above = np.maximum(prints.reshape(len(prints), BANDS, FRAMES), floor) - floor  # uint8: 0 to 151
    total = above.sum(axis=2, dtype=np.int16)  # at most FRAMES x 151 = 6,040 a band
    sums = np.stack([total, total - above[:, :, 0], total - above[:, :, -1]], axis=1)
    audible = above > 0
    count = audible.sum(axis=(1, 2), dtype=np.int16)
    counts = np.stack([count, count - audible[:, :, 0].sum(axis=1, dtype=np.int16),
                       count - audible[:, :, -1].sum(axis=1, dtype=np.int16)], axis=1)
    return Levels(sums, sums.sum(axis=2, dtype=np.int32), counts)


# For each shift, which of Levels' frame ranges the first and the second fingerprint of a pair keep.
_SUMS_KEPT = {0: (0, 0), 1: (1, 2), -1: (2, 1)}
_STEPS_PER_CELL = (MAX_DISTANCE_DB + NEAR_THRESHOLD_DB) / STEP_DB


def could_be_close(found: Levels, pairs: np.ndarray, step: int = 1 << 16) -> np.ndarray:
    """Which (a, b) pairs could lie within MAX_DISTANCE_DB, from their Levels alone: exact, never a pair
    that `distance` would keep (a bound, not an estimate).

    Levels clipped at the audible floor differ, cell by cell, by no more than `distance` counts for that
    cell (nothing where both cells are below it, at most their difference where one is above), and a sum's
    difference is at most the sum of the differences. So a shift whose mean difference over its `count`
    audible cells is at most MAX_DISTANCE_DB has band sums apart by at most MAX_DISTANCE_DB / STEP_DB x
    count in all. A cell is counted when it is audible in either fingerprint, so count is at most the
    audible cells of one plus those of the other, and at most the cells the shift keeps. The bound takes
    NEAR_THRESHOLD_DB more, so float rounding in `distance` cannot matter. Taken `step` pairs at a time:
    the temporary arrays stay a few megabytes."""
    possible = np.zeros(len(pairs), dtype=bool)
    for start in range(0, len(pairs), step):
        a, b = pairs[start:start + step, 0], pairs[start:start + step, 1]
        for shift, (first, second) in _SUMS_KEPT.items():
            counted = np.minimum(BANDS * (FRAMES - abs(shift)),
                                 found.audible[a, first].astype(np.int32) + found.audible[b, second])
            limit = _STEPS_PER_CELL * counted
            # the totals are at most as far apart as the bands are in all: one subtraction a pair, tested first
            maybe = np.flatnonzero(np.abs(found.totals[a, first] - found.totals[b, second]) <= limit)
            apart = np.abs(found.sums[a[maybe], first] - found.sums[b[maybe], second]).sum(axis=1, dtype=np.int32)
            possible[start + maybe[apart <= limit[maybe]]] = True
    return possible


# The weightings of a fingerprint's band sums that the candidate search compares: the level total, and the
# lower half of the bands against the upper (nearly independent of the total: it keeps half of what that keeps)
_PROJECTIONS = np.stack([np.ones(BANDS), np.where(np.arange(BANDS) < BANDS // 2, 1.0, -1.0)])


@dataclass
class LevelRanges:
    """For each fingerprint and each of _PROJECTIONS, the range its weighted band sums can reach: from the
    lowest, over the three frame ranges of Levels, less 3.15 steps per audible cell, to the highest plus as
    much. Two fingerprints whose ranges miss each other for any projection cannot pass `could_be_close`,
    so the candidate search leaves them out.

    Why: for weights of +1 or -1 per band, the weighted sums of two fingerprints differ by at most the sum
    of their band sums' differences, which `could_be_close` keeps, at a shift that passes, within 3.15
    steps per cell it counts: at most the audible cells of one plus those of the other in the frames the
    shift keeps. So the first's weighted sum less 3.15 steps per audible cell of it is at most the
    second's plus as much for the second, and each side lies within its fingerprint's range; one step more
    on each side, so that float rounding cannot matter."""

    low: np.ndarray  # (projections, sounds): a projection's row is read for many pairs at once
    high: np.ndarray

    def take(self, order: np.ndarray) -> LevelRanges:
        return LevelRanges(self.low[:, order], self.high[:, order])

    def overlap(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Which (a[k], b[k]) pairs of fingerprints have overlapping ranges for every projection."""
        possible = np.arange(len(a))
        for low, high in zip(self.low, self.high, strict=True):  # each projection on what the others left
            x, y = a[possible], b[possible]
            possible = possible[(low[x] <= high[y]) & (low[y] <= high[x])]
        mask = np.zeros(len(a), dtype=bool)
        mask[possible] = True
        return mask


def level_ranges(found: Levels) -> LevelRanges:
    """The LevelRanges of every fingerprint, SOUNDS_AT_ONCE at a time: the band sums of 100,000 sounds as
    floats would take 77 MB."""
    low, high = np.empty((len(_PROJECTIONS), len(found.sums))), np.empty((len(_PROJECTIONS), len(found.sums)))
    for start in range(0, len(found.sums), SOUNDS_AT_ONCE):
        some = slice(start, start + SOUNDS_AT_ONCE)
        weighted = found.sums[some].astype(np.float64) @ _PROJECTIONS.T  # (sounds, 3 frame ranges, projections)
        margin = _STEPS_PER_CELL * found.audible[some, :, None] + 1.0  # not the duration slack: levels
        low[:, some], high[:, some] = (weighted - margin).min(axis=1).T, (weighted + margin).max(axis=1).T
    return LevelRanges(low, high)


@dataclass
class ComparedBlock:
    """What a block of the search found: its new sounds (now compared with every sound they could be one
    recording with), how many candidates it had, and the pairs (a < b) within MAX_DISTANCE_DB, in dB."""

    sounds: np.ndarray
    candidates: int
    close: dict[tuple[int, int], float]


def compared_blocks(prints: np.ndarray, lengths: np.ndarray, new: np.ndarray | None = None,
                    slack: float = LENGTH_SLACK_S) -> Iterator[ComparedBlock]:
    """The pairs of fingerprints that are one recording, a block of the candidate search at a time;
    `lengths` in seconds (a pair's durations must be alike: `durations_alike`). Only the candidates
    `could_be_close` are measured, so that memory holds the pairs within reach, not every candidate.
    `new`: only the pairs with at least one of these sounds (a mask; default every sound); `slack`: the
    seconds `durations_alike` allows beyond the ratio (the default but for `make dataset`'s frozen recipe)."""
    found = levels(prints)  # once: summing them again for each block of a large catalog took seconds
    for block in candidate_blocks(coarse(prints), lengths, new=new, ranges=level_ranges(found), slack=slack):
        candidates = block.pairs[could_be_close(found, block.pairs)]
        batched = batched_distances(prints, candidates)
        within_reach = batched <= MAX_DISTANCE_DB + NEAR_THRESHOLD_DB
        close = {}
        for (a, b), d in zip(candidates[within_reach].tolist(), batched[within_reach].tolist(), strict=True):
            if d >= MAX_DISTANCE_DB - NEAR_THRESHOLD_DB:  # too near to call: distance() itself decides, as before
                d = distance(as_db(prints[a]), as_db(prints[b]))
            if d <= MAX_DISTANCE_DB:
                close[(a, b)] = d
        yield ComparedBlock(block.sounds, len(block.pairs), close)


def close_pairs(prints: np.ndarray, lengths: np.ndarray, new: np.ndarray | None = None,
                slack: float = LENGTH_SLACK_S) -> tuple[dict[tuple[int, int], float], int]:
    """Every pair `compared_blocks` finds, with its distance in dB, in row-major order, and how many
    candidates the coarse search found."""
    close: dict[tuple[int, int], float] = {}
    found = 0
    for block in compared_blocks(prints, lengths, new, slack):
        close.update(block.close)
        found += block.candidates
    return {pair: close[pair] for pair in sorted(close)}, found

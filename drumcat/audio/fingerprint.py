"""Audio fingerprints for near-duplicate detection: the same recording after re-encoding, resampling, a
bit-depth or gain change, a trimmed or padded start, or a mono mix, told apart from other recordings of
the same drum (velocity layers, round robins), which sound alike but are not the same take.

A fingerprint is the log-mel spectrogram of the 0.46 s from the sound's onset, found to the sample
(the first sample above 5% of the peak, less a 2 ms pre-roll), relative to its loudest cell, in 32
bands x 40 frames (11.6 ms each), quantized to 1/3 dB: 1,280 bytes, computed in `infer`'s workers from
the samples they decode anyway. Peak normalization makes it blind to gain; the sample-accurate onset
to a trimmed or padded start (frame-accurate alignment was not enough: a 5 ms trim moved it by up to
8 dB); 22,050 Hz and the downmix to resampling and a mono mix; the 80 dB range to 16/24-bit or float
samples; and comparing in dB, cell by cell, with a one-frame shift allowed, to the small spectral
changes of lossy codecs. Two different hits differ by several dB somewhere in their attack or decay.
Thresholds are measured in bench/near_duplicates.py and tests/test_near_duplicates.py.
"""

from __future__ import annotations

import numpy as np

from drumcat.audio.features import FeatureRecipe, compute_features, prepare_clips

RECIPE = FeatureRecipe(sample_rate=22_050, clip_seconds=0.5, feature_type="logmel", n_fft=512, hop_length=256,
                       n_mels=32, fmin=20.0, fmax=None, top_db=80.0, peak_normalize=True)
ONSET_LEVEL = 0.3  # of the peak: a level every take of a hit reaches early in its attack
PRE_ROLL = 44  # samples (2 ms) kept before the onset
BANDS, FRAMES = 32, 40
RANGE_DB = 80.0
STEP_DB = 1 / 3  # quantization: uint8 holds 0..80 dB in 240 steps
AUDIBLE_DB = -50.0  # cells quieter than this in both fingerprints are not compared
MAX_DISTANCE_DB = 1.0  # at or under: the same recording (distinct Hydrogen velocity layers: 1.06 dB and more)
# Candidate pairs, before the full distance: the cosine of their coarse summaries, and their durations' ratio.
CANDIDATE_COSINE = 0.95
LENGTH_RATIO = 1.2
SHORTEST_S = 1e-3  # a duration below this (or unknown, 0) counts as this in the ratio


def from_logmel(logmel: np.ndarray) -> np.ndarray:
    """One fingerprint (BANDS * FRAMES uint8) from a (64 mels, frames) log-mel matrix in dB."""
    relative = np.maximum(logmel - logmel.max(), -RANGE_DB)
    pooled = relative.reshape(BANDS, -1, relative.shape[1]).mean(axis=1)[:, :FRAMES]  # (n_mels / BANDS) bands each
    window = np.full((BANDS, FRAMES), -RANGE_DB, dtype=np.float32)
    window[:, : pooled.shape[1]] = pooled
    return np.round((window + RANGE_DB) / STEP_DB).astype(np.uint8).reshape(-1)


def from_onset(samples: np.ndarray) -> np.ndarray:
    """The samples from PRE_ROLL before the onset (the first sample above ONSET_LEVEL of the peak), with
    zeros in front when the sound starts sooner, so every fingerprint starts the same time before it."""
    magnitude = np.abs(samples)
    peak = float(magnitude.max(initial=0.0))
    if peak <= 0:
        return samples
    onset = int(np.argmax(magnitude >= ONSET_LEVEL * peak))
    if onset >= PRE_ROLL:
        return samples[onset - PRE_ROLL:]
    return np.concatenate([np.zeros(PRE_ROLL - onset, dtype=samples.dtype), samples])


BATCH = 512  # clips whose features are computed at once: memory stays bounded for a whole training set


def fingerprints(clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """Fingerprints of mono clips decoded at RECIPE's rate (22,050 Hz), one row each."""
    if sample_rate != RECIPE.sample_rate:
        raise ValueError(f"fingerprints need clips decoded at {RECIPE.sample_rate} Hz, not {sample_rate}")
    rows = [np.zeros((0, BANDS * FRAMES), np.uint8)]
    for start in range(0, len(clips), BATCH):
        batch = [from_onset(clip) for clip in clips[start:start + BATCH]]
        features = compute_features(prepare_clips(batch, RECIPE), RECIPE)
        rows.append(np.stack([from_logmel(f[..., 0]) for f in features]))
    return np.concatenate(rows)


def as_db(fingerprint: bytes | np.ndarray) -> np.ndarray:
    values = np.frombuffer(fingerprint, dtype=np.uint8) if isinstance(fingerprint, bytes) else fingerprint
    return _db(values.reshape(BANDS, FRAMES))


def _db(quantized: np.ndarray) -> np.ndarray:
    return quantized.astype(np.float32) * STEP_DB - RANGE_DB


AUDIBLE_FROM = int(np.argmax(_db(np.arange(256)) > AUDIBLE_DB))
"""The first quantized value as_db makes louder than AUDIBLE_DB. as_db is monotonic, so a cell is audible in
`distance` exactly when the larger of its two quantized values is at least this."""


SHIFTS = (-1, 0, 1)  # frames one fingerprint may be moved against the other


def aligned(a: np.ndarray, b: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping frames (last axis) of two fingerprints, `b` moved `shift` frames against `a`."""
    return a[..., max(0, shift):FRAMES + min(0, shift)], b[..., max(0, -shift):FRAMES + min(0, -shift)]


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |dB difference| over the audible cells, the best of shifting one by -1, 0 or +1 frame."""
    best = np.inf
    for shift in SHIFTS:
        x, y = aligned(a, b, shift)
        audible = np.maximum(x, y) > AUDIBLE_DB
        if audible.any():
            best = min(best, float(np.abs(x - y)[audible].mean()))
    return best


def coarse(prints: np.ndarray) -> np.ndarray:
    """Unit vectors of an 8-band x 10-frame summary (in dB above the floor): the candidate search space."""
    db = prints.reshape(len(prints), BANDS, FRAMES).astype(np.float32)
    summary = db.reshape(len(prints), 8, BANDS // 8, 10, FRAMES // 10).mean(axis=(2, 4)).reshape(len(prints), -1)
    norms = np.linalg.norm(summary, axis=1, keepdims=True)
    return summary / np.where(norms > 0, norms, 1)


BLOCK_CELLS = 1 << 24  # similarities per block of the candidate search: 64 MB, whatever the catalog's size


def candidate_pairs(vectors: np.ndarray, lengths: np.ndarray, block_cells: int = BLOCK_CELLS) -> np.ndarray:
    """(a, b) rows, a < b, of the pairs whose coarse summaries are close and durations alike, in row-major
    order. The sounds are taken from the shortest, and a block of them is compared only with the sounds
    after it that are at most LENGTH_RATIO times as long as its longest: with durations spread over a few
    octaves, a fraction of the catalog. Each block's similarities stay within `block_cells` (a fixed
    4,096 rows against every sound made 16 GB blocks for a million sounds)."""
    order = np.argsort(lengths, kind="stable")
    vectors, lengths = vectors[order], lengths[order]
    block = max(1, min(4096, block_cells // max(len(vectors), 1)))
    found = [np.zeros((0, 2), dtype=np.int64)]
    for start in range(0, len(vectors), block):
        stop = min(start + block, len(vectors))
        reach = LENGTH_RATIO * max(lengths[stop - 1], SHORTEST_S) * (1 + 1e-9)  # a little more: the test decides
        last = int(np.searchsorted(lengths, reach, "right"))
        rows, columns = np.nonzero(vectors[start:stop] @ vectors[start:last].T >= CANDIDATE_COSINE)
        i, j = rows + start, columns + start
        keep = (i < j) & durations_alike(lengths[i], lengths[j])
        found.append(np.stack([order[i[keep]], order[j[keep]]], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)  # a < b in the caller's indices
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def durations_alike(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether the longer of two durations (seconds) is at most LENGTH_RATIO times the shorter."""
    return np.maximum(a, b) <= LENGTH_RATIO * np.maximum(np.minimum(a, b), SHORTEST_S)


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
        audible = np.maximum(x, y) >= AUDIBLE_FROM
        count = audible.sum(axis=(1, 2))
        steps = (np.abs(x.astype(np.int16) - y) * audible).sum(axis=(1, 2))
        best = np.minimum(best, np.where(count > 0, steps * STEP_DB / np.maximum(count, 1), np.inf))
    return best


def close_pairs(prints: np.ndarray, lengths: np.ndarray) -> tuple[dict[tuple[int, int], float], int]:
    """The pairs (a < b) of fingerprints that are one recording, with their distance in dB, and how many
    candidates were checked; `lengths` in seconds (a pair's durations must be within LENGTH_RATIO)."""
    if not len(prints):
        return {}, 0
    candidates = candidate_pairs(coarse(prints), lengths)
    batched = batched_distances(prints, candidates)
    within_reach = np.flatnonzero(batched <= MAX_DISTANCE_DB + NEAR_THRESHOLD_DB)
    close = {}
    for (a, b), d in zip(candidates[within_reach].tolist(), batched[within_reach].tolist(), strict=True):
        if d >= MAX_DISTANCE_DB - NEAR_THRESHOLD_DB:  # too near to call: distance() itself decides, as before
            d = distance(as_db(prints[a]), as_db(prints[b]))
        if d <= MAX_DISTANCE_DB:
            close[(a, b)] = d
    return close, len(candidates)

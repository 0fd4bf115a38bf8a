"""Audio fingerprints for near-duplicate detection: the same recording after re-encoding, resampling, a
bit-depth or gain change, a trimmed or padded start, or a mono mix, told apart from other recordings of
the same drum (velocity layers, round robins), which sound alike but are not the same take.

A fingerprint is the log-mel spectrogram of the 0.46 s from the sound's onset, found to the sample
(the first sample above 30% of the peak, less a 2 ms pre-roll), relative to its loudest cell, in 32
bands x 40 frames (11.6 ms each), quantized to 1/3 dB: 1,280 bytes, computed by worker processes when
near-duplicates are first asked for. Peak normalization makes it blind to gain; the sample-accurate onset
to a trimmed or padded start (frame-accurate alignment was not enough: a 5 ms trim moved it by up to
8 dB); 22,050 Hz and the downmix to resampling and a mono mix; the 80 dB range to 16/24-bit or float
samples; and comparing in dB, cell by cell, with a one-frame shift allowed, to the small spectral
changes of lossy codecs. Two different hits differ by several dB somewhere in their attack or decay.
Thresholds are measured in bench/near_duplicates.py and tests/test_near_duplicates.py; finding the pairs
within them among many fingerprints is drumcat/audio/pair_search.py.
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

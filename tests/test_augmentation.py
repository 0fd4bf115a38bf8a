"""Training-time augmentation (drumcat/model/train/augmentation.py) on real synthesized hits."""

from __future__ import annotations

import numpy as np

from drumcat.audio.synth import render
from drumcat.model.train.augmentation import DECAY_SLOPES, augment, reshape_decay

RATE = 22_050


def after_onset_slope(out: np.ndarray, clip: np.ndarray, onset: int) -> np.ndarray:
    """log(out / clip) per second after `onset`, where the clip is loud enough to divide by."""
    loud = np.flatnonzero(np.abs(clip) > 1e-3)
    loud = loud[loud > onset + 10]
    return np.log(out[loud] / clip[loud]) / ((loud - onset) / RATE)


def test_a_reshaped_decay_scales_the_hit_after_its_onset_by_one_exponential() -> None:
    seconds = np.arange(RATE) / RATE
    clip = np.concatenate([np.zeros(500), np.sin(2 * np.pi * 3000 * seconds) * np.exp(-4 * seconds)])
    clip = clip.astype(np.float32)
    onset = int(np.argmax(np.abs(clip) > 0.1 * np.abs(clip).max()))  # within 20 dB of the peak
    assert 500 <= onset <= 502
    slope = np.random.default_rng(7).uniform(*DECAY_SLOPES)
    out = reshape_decay(clip, np.random.default_rng(7), RATE)
    np.testing.assert_array_equal(out[:onset], clip[:onset])
    np.testing.assert_allclose(after_onset_slope(out, clip, onset), slope, atol=1e-3)


def test_decay_reshaping_changes_only_the_envelope_of_each_variation() -> None:
    """Drawn after every other variation: the reshaped copy is the plain copy times one exponential, the
    rest of the variation unchanged."""
    clip = render("Crash", seed=3)[:RATE]
    for seed in range(6):
        plain = augment(clip, np.random.default_rng(seed), RATE)
        shaped = augment(clip, np.random.default_rng(seed), RATE, 1.0)
        onset = int(np.argmax(np.abs(plain) > 0.1 * np.abs(plain).max()))
        slopes = after_onset_slope(shaped, plain, onset)
        assert np.ptp(slopes) < 1e-2 and DECAY_SLOPES[0] <= slopes.mean() <= DECAY_SLOPES[1]

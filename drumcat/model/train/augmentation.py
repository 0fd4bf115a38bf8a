"""Training-time augmentation: random variations of a hit that imitate how kits differ, SpecAugment masks
on its features, and mixup of two sounds in the power domain.

Every function draws from the generator it is given, in a fixed order, so a seed's training set is the
same on every run (`augmented_training_set` in train.py composes them). A new variation must draw
nothing when it is off, or every existing recipe's training set would change under it.
"""

from __future__ import annotations

import numpy as np

from drumcat.audio.files import resample


def _room_impulse(rng: np.random.Generator, rate: int) -> np.ndarray:
    """A synthetic room: exponentially decaying noise, RT60 between 0.1 and 0.8 s."""
    rt60 = rng.uniform(0.1, 0.8)
    t = np.arange(int(rt60 * rate)) / rate
    impulse = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    impulse[0] = 1.0
    return (impulse / np.abs(impulse).sum()).astype(np.float32)


DECAY_SLOPES = (-3.0, 1.5)
"""Range of `reshape_decay`'s slope, in nepers per second: at most +13 dB at the end of a 1 s clip."""


def reshape_decay(clip: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
    """The hit's decay made faster or slower: after its onset (the first sample within 20 dB of its peak)
    the clip is multiplied by exp(k t), k drawn from DECAY_SLOPES. A choked cymbal or a gated hit on one
    side, a short machine crash heard ringing on the other: how long a sound lasts varies between kits
    more than the augmentation's fade-out alone imitates."""
    onset = int(np.argmax(np.abs(clip) > 0.1 * np.abs(clip).max()))
    seconds = np.maximum(np.arange(clip.size) - onset, 0) / rate
    return (clip * np.exp(rng.uniform(*DECAY_SLOPES) * seconds)).astype(np.float32)


def augment(clip: np.ndarray, rng: np.random.Generator, rate: int, decay_reshape: float = 0.0) -> np.ndarray:
    """One random variation of a hit, imitating how kits differ: tuning, room, EQ, drive, level, length;
    with `decay_reshape`, that share of the variations also get `reshape_decay` (nothing is drawn for it
    otherwise, so the recipe without it draws exactly the numbers it always drew)."""
    import scipy.signal

    factor = rng.uniform(0.85, 1.15)  # about +-2.5 semitones
    out = resample(clip, int(rate * factor), rate) if abs(factor - 1) > 0.01 else clip.copy()
    out = np.concatenate([np.zeros(int(rng.uniform(0, 0.02) * rate), np.float32), out])
    if rng.random() < 0.5:  # room: convolve with a synthetic impulse response, mix wet and dry
        wet = scipy.signal.fftconvolve(out, _room_impulse(rng, rate))[: out.size]
        mix = rng.uniform(0.1, 0.5)
        out = (1 - mix) * out + mix * wet * (np.abs(out).max() / max(np.abs(wet).max(), 1e-9))
    kind = rng.choice(["none", "lowpass", "highpass", "bandpass"], p=[0.4, 0.2, 0.2, 0.2])
    if kind == "bandpass":
        low = rng.uniform(60, 600)
        sos = scipy.signal.butter(2, [low, rng.uniform(low * 4, 10_000)], btype="bandpass", fs=rate, output="sos")
        out = scipy.signal.sosfilt(sos, out)
    elif kind != "none":
        cutoff = rng.uniform(3000, 9000) if kind == "lowpass" else rng.uniform(40, 400)
        out = scipy.signal.sosfilt(scipy.signal.butter(2, cutoff, btype=str(kind), fs=rate, output="sos"), out)
    if rng.random() < 0.3:  # drive: soft clipping, as sample packs often are
        drive = rng.uniform(1.5, 6.0)
        out = np.tanh(drive * out / max(np.abs(out).max(), 1e-9))
    out = out * 10 ** (rng.uniform(-18, 0) / 20)  # gain; matters relative to the noise floor below
    out = out + rng.standard_normal(out.size) * 10 ** (rng.uniform(-90, -50) / 20)
    if rng.random() < 0.2:  # a shorter sample: fade out early
        keep = int(rng.uniform(0.15, 0.6) * rate)
        if keep < out.size:
            out = out[:keep] * np.linspace(1, 0, keep) ** 2
    if decay_reshape and rng.random() < decay_reshape:
        out = reshape_decay(out, rng, rate)
    return out.astype(np.float32)


def mask_spectrogram(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment: blank one band of up to 8 mel bins and one span of up to 10 frames."""
    masked = features.copy()
    floor = masked.min()
    bands, frames = masked.shape[0], masked.shape[1]
    band = int(rng.integers(0, 9))
    start = int(rng.integers(0, bands - band + 1))
    masked[start:start + band] = floor
    span = int(rng.integers(0, 11))
    start = int(rng.integers(0, frames - span + 1))
    masked[:, start:start + span] = floor
    return masked


MIXUP_ALPHA = 0.4  # Beta(0.4, 0.4): most mixes are mild, a few near even


def mix_half_in_power(x: np.ndarray, targets: np.ndarray, first_variation: int, rng: np.random.Generator,
                      in_decibels: bool = True) -> None:
    """Mixup, in place, of half the rows from `first_variation` on (the augmented copies; the clips before
    stay as recorded) with a random partner: mixed as power, the way two sounds add, and their targets in
    the same proportion. Features not in decibels (PCEN, already a compressed ratio) are mixed as they are."""
    mixed = rng.choice(np.arange(first_variation, len(x)), size=(len(x) - first_variation) // 2, replace=False)
    partners = rng.integers(0, len(x), size=mixed.size)
    weight = rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, size=mixed.size).astype(np.float32)
    weight = np.maximum(weight, 1 - weight)  # the primary sound stays the louder one
    w = weight[:, None, None, None]
    if in_decibels:
        power = w * 10 ** (x[mixed] / 10) + (1 - w) * 10 ** (x[partners] / 10)
        x[mixed] = 10 * np.log10(np.maximum(power, 1e-10))
    else:
        x[mixed] = w * x[mixed] + (1 - w) * x[partners]
    targets[mixed] = weight[:, None] * targets[mixed] + (1 - weight[:, None]) * targets[partners]

"""Feature recipes: the exact preprocessing a model was trained with, as stated in its card.

A recipe is data (`FeatureRecipe`), read from the card; code never assumes a sample rate or a shape.
Three feature types:
- "logmel": log-mel spectrogram in dB, computed for a whole batch at once with numpy (fast); equal to
  librosa.power_to_db(librosa.feature.melspectrogram(...)) with the same parameters.
- "pcen": the same mel power through per-channel energy normalization (`pcen_batch`), equal to
  librosa.pcen with its defaults.
- "mfcc": librosa.feature.mfcc itself, so models trained on librosa MFCCs (the reference design's
  model1.keras) see exactly the features they were trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from drumcat.errors import DrumcatError

FEATURE_TYPES = ("logmel", "mfcc", "pcen")


ONSET_LEVEL = 0.02
"""A sound starts at its first sample above this share of its peak (-34 dB): above a quiet noise floor."""
PRE_ROLL_SECONDS = 0.005
"""Kept before the onset, so the attack's first rise is in the clip."""
SILENT_PEAK = 1e-3
"""-60 dBFS: samples whose loudest is below it hold no sound to classify. The dataset drops such clips, so
a model never learned from one; `infer` records such a file as silent instead of filing it."""


def is_silent(samples: np.ndarray) -> bool:
    return float(np.abs(samples).max(initial=0.0)) < SILENT_PEAK


def clip_start(samples: np.ndarray, rate: int) -> int:
    """Where a one-shot's clip starts: PRE_ROLL_SECONDS before its onset, or its first sample. The one rule
    for the dataset's clips (`dataset.to_clip`) and for files at inference (`start_at_onset`)."""
    magnitude = np.abs(samples)
    peak = float(magnitude.max(initial=0.0))
    if peak <= 0:
        return 0
    onset = int(np.argmax(magnitude > ONSET_LEVEL * peak))
    return max(0, onset - int(PRE_ROLL_SECONDS * rate))


def from_cut(samples: np.ndarray, start: int, rate: int, recipe: FeatureRecipe) -> np.ndarray:
    """The samples from `start` (where the clip is cut: `clip_start`, or 0) with the recipe's `lead_seconds`
    before it: the file's own samples where it holds them, so a noise floor in front runs on unbroken, and
    zeros for the rest."""
    begin = start - int(round(recipe.lead_seconds * rate))
    if begin >= 0:
        return samples[begin:]
    return np.concatenate([np.zeros(-begin, dtype=samples.dtype), samples])


def centered_frames(samples: int, hop_length: int) -> int:
    """STFT frames of a signal, centered as librosa computes them."""
    return 1 + samples // hop_length


@dataclass(frozen=True)
class FeatureRecipe:
    sample_rate: int = 22_050
    """Audio is resampled to this rate (Hz) before features are computed."""
    clip_seconds: float = 1.0
    """Each file is trimmed or zero-padded (at the end) to this length (plus `tail_seconds`)."""
    feature_type: str = "logmel"
    """"logmel", "mfcc" or "pcen"."""
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    """Samples under the Hann window, centered in the FFT's n_fft (zero-padded); None means n_fft."""
    tail_seconds: float = 0.0
    """Seconds after the clip seen at a coarser time resolution, their frames appended to the clip's
    (a multi-scale input: a cymbal's decay outlasts the first second, its fine timing does not matter).
    0 means none."""
    tail_hop_length: int = 1024
    """Hop of the tail's frames (same FFT size, so its bins compare with the clip's)."""
    n_mels: int = 64
    n_mfcc: int = 20
    """Only for "mfcc"."""
    fmin: float = 20.0
    fmax: float | None = None
    """None means half the sample rate."""
    top_db: float = 80.0
    """Dynamic range kept below each clip's loudest bin."""
    peak_normalize: bool = True
    """Scale each clip to peak 1.0 first, so the model hears timbre, not level."""
    native_rates: bool = False
    """Files recorded above sample_rate are not resampled: their features come from `at_rate`, the same
    window and hops in seconds and the same mel bands in Hz at the file's own rate (resampling 44.1 kHz
    files to 32 kHz cost `infer` 16%: README, run 35). What it changes in a model's answers is measured
    (`bench/native_rates.py`; README, run 37: at 44.1 kHz 1.7% of unseen one-shots changed folders, the FFT's
    bins being 2% closer together than at 32 kHz), so only a recipe whose window scales to whole samples
    has it on (`train --recipe shared-grid`). False: every file is resampled to sample_rate, the exact
    preprocessing of training."""
    mel_gain: float = 1.0
    """Factor on the mel filterbank. 1, except in the recipes `at_rate` derives: a band's power grows with
    the window and FFT sizes, and this brings it back to the original recipe's scale."""
    layout: str = "channels_last"
    """Input layout: "channels_last" gives (bands, frames, 1); "frames_first" gives (frames, bands)."""
    start_at_onset: bool = False
    """Each file is cut where its sound starts (`clip_start`) before it is fitted to the clip's length, as
    the dataset cut every clip the default model trained on. Without it, a file with 50 ms of near-silence
    in front gave that model 0.75 core accuracy on its test kits instead of 0.87 (README, run 57). False:
    files are read from their first sample (a model whose card does not say how it was trained)."""
    lead_seconds: float = 0.0
    """How much earlier than the onset cut (`start_at_onset`) the model's clip starts: the file's own samples
    where it holds them, zeros for the rest (`from_cut`). The dataset cuts clips PRE_ROLL_SECONDS before
    their onset, but training puts 0-20 ms of zeros in front of three copies in four
    (`augmentation.augment`), so a network learns onsets 5-25 ms in; this places a file's onset inside that
    range rather than at its edge. 0: the file from its cut (or its first sample)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept in the card (e.g. what the features were first computed with)."""

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def tail_samples(self) -> int:
        return int(round(self.tail_seconds * self.sample_rate))

    @property
    def total_samples(self) -> int:
        """How much of each file the features read: the clip and its tail."""
        return self.clip_samples + self.tail_samples

    @property
    def total_seconds(self) -> float:
        return self.clip_seconds + self.tail_seconds

    @property
    def n_frames(self) -> int:
        head = centered_frames(self.clip_samples, self.hop_length)
        return head + (centered_frames(self.tail_samples, self.tail_hop_length) if self.tail_samples else 0)

    @property
    def n_bands(self) -> int:
        return self.n_mfcc if self.feature_type == "mfcc" else self.n_mels

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.layout == "frames_first":
            return (self.n_frames, self.n_bands)
        return (self.n_bands, self.n_frames, 1)

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Settings at their defaults are written as before they existed, so every existing card keeps its hash.
        if not self.tail_seconds:
            del data["tail_seconds"], data["tail_hop_length"]
        for name, default in (("win_length", None), ("native_rates", False), ("mel_gain", 1.0),
                              ("start_at_onset", False), ("lead_seconds", 0.0)):
            if data[name] == default:
                del data[name]
        return data

    def at_rate(self, rate: int) -> FeatureRecipe | None:
        """This recipe for audio at `rate` without resampling it: the window, hops and clip the same in
        seconds, the mel bands the same in Hz, the power brought to this recipe's scale; None where the
        nearest whole hops would change the input's shape (the file is resampled instead).

        Where the window and the FFT scale to whole numbers of samples (1,024 at 32 kHz is 1,536 at
        48 kHz; 960 is 1,323 at 44.1 kHz), the FFT's bins fall at the same frequencies. Otherwise the
        window is rounded and centered in the next FFT size scipy computes fast (1,411 samples at 44.1 kHz
        in 1,440 points, where 1,411 points cost three times as much), and the bins fall a little closer
        together: 30.6 Hz against 31.25, which moved near ties to other folders (README, run 37)."""
        if rate == self.sample_rate:
            return self
        import scipy.fft

        scale = rate / self.sample_rate
        window = round(self.window_length * scale)
        n_fft = round(self.n_fft * scale)
        if not (_whole(self.window_length * scale) and _whole(self.n_fft * scale)):
            n_fft = scipy.fft.next_fast_len(window, real=True)
        clip_samples = round(self.clip_seconds * rate)
        hop = _hop_keeping_frames(self.hop_length * scale, clip_samples, centered_frames(self.clip_samples,
                                                                                       self.hop_length))
        tail_hop = _hop_keeping_frames(self.tail_hop_length * scale, round(self.tail_seconds * rate),
                                       centered_frames(self.tail_samples, self.tail_hop_length))
        if hop is None or tail_hop is None:
            return None
        return replace(
            self, sample_rate=rate, n_fft=n_fft, win_length=window if window != n_fft else None,
            hop_length=hop, tail_hop_length=tail_hop, fmax=self.fmax or self.sample_rate / 2, native_rates=False,
            mel_gain=self.mel_gain * _band_power(self.window_length, self.n_fft) / _band_power(window, n_fft))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "card") -> FeatureRecipe:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise DrumcatError(f"{where}: unknown feature setting(s) {sorted(unknown)}; known: {sorted(known)}")
        recipe = cls(**data)
        recipe.validate(where)
        return recipe

    def validate(self, where: str = "recipe") -> None:
        if self.feature_type not in FEATURE_TYPES:
            raise DrumcatError(f"{where}: feature_type {self.feature_type!r} is not one of {FEATURE_TYPES}")
        if self.layout not in ("channels_last", "frames_first"):
            raise DrumcatError(f"{where}: layout {self.layout!r} must be channels_last or frames_first")
        if self.sample_rate <= 0 or self.clip_seconds <= 0 or self.hop_length <= 0 or self.n_fft <= 0:
            raise DrumcatError(f"{where}: sample_rate, clip_seconds, n_fft and hop_length must be positive")
        if not 0 <= self.lead_seconds < self.clip_seconds:
            raise DrumcatError(f"{where}: lead_seconds must be 0 or more and shorter than the clip")
        if self.tail_seconds < 0 or self.tail_hop_length <= 0:
            raise DrumcatError(f"{where}: tail_seconds must be 0 or more and tail_hop_length positive")
        if self.tail_seconds and self.feature_type != "logmel":
            raise DrumcatError(f"{where}: a tail (tail_seconds) needs feature_type logmel")
        if self.native_rates and self.feature_type != "logmel":
            raise DrumcatError(f"{where}: native_rates needs feature_type logmel")
        if not 0 < self.window_length <= self.n_fft or self.mel_gain <= 0:
            raise DrumcatError(f"{where}: win_length must be between 1 and n_fft, mel_gain positive")


def _whole(samples: float) -> bool:
    return abs(samples - round(samples)) < 1e-9


def _hop_keeping_frames(exact_hop: float, samples: int, frames: int) -> int | None:
    """The whole hop nearest `exact_hop` that gives `samples` the same number of centered frames, if
    rounding down or up does (a hop of 352.8 samples, rounded to 353, would lose a frame of a second)."""
    for hop in sorted({math.floor(exact_hop), math.ceil(exact_hop)}, key=lambda h: abs(h - exact_hop)):
        if hop > 0 and centered_frames(samples, hop) == frames:
            return hop
    return None


def _band_power(window: int, n_fft: int) -> float:
    """How a mel band's power for the same sound scales with the STFT: as the window's length times the
    FFT size, for tones and noise alike (a bin's power grows with the window, and the Slaney filters weigh
    bins by Hz, so a band sums more of them as the FFT grows)."""
    return float(window * n_fft)


_MEL_BASES: dict[tuple, np.ndarray] = {}


def _mel_key(recipe: FeatureRecipe) -> tuple:
    return (recipe.sample_rate, recipe.n_fft, recipe.n_mels, recipe.fmin, recipe.fmax, recipe.mel_gain)


def mel_basis(recipe: FeatureRecipe) -> np.ndarray:
    """librosa's mel filterbank for the recipe (Slaney mel scale, Slaney area normalization), so "logmel"
    equals librosa's melspectrogram. Computed here, not with librosa.filters.mel, because importing that
    costs about a second and 110 MB (it pulls in scipy.signal) in every process that starts `infer`;
    tests/test_infer.py proves the two filterbanks equal."""
    key = _mel_key(recipe)
    if key not in _MEL_BASES:
        basis = _slaney_mel_filterbank(
            recipe.sample_rate, recipe.n_fft, recipe.n_mels, recipe.fmin, recipe.fmax or recipe.sample_rate / 2)
        _MEL_BASES[key] = basis if recipe.mel_gain == 1.0 else basis * np.float32(recipe.mel_gain)
    return _MEL_BASES[key]


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    mels = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = mels * (200.0 / 3)
    return np.where(mels >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0)), hz)


def _slaney_mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters between mel-spaced edges, each scaled to unit area: (n_mels, 1 + n_fft // 2)."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / rate)  # k * rate / n_fft: below rate / 2 at the top for an odd FFT
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(fmin)), _hz_to_mel(np.float64(fmax)), n_mels + 2))
    widths = np.diff(edges)
    distance = edges[:, np.newaxis] - fft_hz[np.newaxis, :]
    rising = -distance[:-2] / widths[:-1, np.newaxis]
    falling = distance[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _window(length: int, n_fft: int) -> np.ndarray:
    """The periodic Hann window (scipy's get_window("hann", n, fftbins=True), which librosa uses), centered
    in n_fft points as librosa pads a shorter win_length."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    start = (n_fft - length) // 2
    return np.pad(hann, (start, n_fft - length - start)).astype(np.float32)


def prepare_clips(clips: list[np.ndarray], recipe: FeatureRecipe) -> np.ndarray:
    """Fit each decoded clip to the recipe's length with its tail (trim, or zero-pad at the end) and
    (optionally) peak-normalize: (batch, samples)."""
    batch = np.zeros((len(clips), recipe.total_samples), dtype=np.float32)
    for row, clip in enumerate(clips):
        clip = clip[: recipe.total_samples]
        target = batch[row, : clip.shape[0]]
        peak = max(float(clip.max(initial=0.0)), -float(clip.min(initial=0.0))) if recipe.peak_normalize else 0.0
        if peak > 1e-8:
            np.divide(clip, np.float32(peak), out=target)  # one pass: no temporary clip
        else:
            target[:] = clip
    return batch


_STFT_CHUNK = 8  # clips per STFT step: keeps the windowed frames (2.8 MB) in the CPU cache


def logmel_batch(batch: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """(batch, samples) -> (batch, n_mels, frames) log-mel dB: the clip's frames, then its tail's at the
    tail's coarser hop. Both in one dB scale, floored top_db below each clip's loudest bin, so the tail
    shows how far a sound has decayed."""
    power = _mel_power(batch[:, : recipe.clip_samples], recipe, recipe.hop_length)
    if recipe.tail_samples:
        tail = _mel_power(batch[:, recipe.clip_samples:], recipe, recipe.tail_hop_length)
        power = np.concatenate([power, tail], axis=1)
    db = power  # converted in place: 10 * log10(max(power, 1e-10)), floored top_db below each clip's peak
    np.maximum(db, 1e-10, out=db)
    np.log10(db, out=db)
    db *= 10.0
    np.maximum(db, db.max(axis=(1, 2), keepdims=True) - recipe.top_db, out=db)
    return db.transpose(0, 2, 1)


def _mel_power(batch: np.ndarray, recipe: FeatureRecipe, hop_length: int) -> np.ndarray:
    """(batch, samples) -> (batch, frames, n_mels) mel power, a vectorized STFT over chunks of clips.

    Written for speed (it is a third of `infer`'s work). Frames that hold only the zeros a short clip
    is padded with are not transformed: their power is exactly zero anyway, so clips are sorted by
    how many frames hold sound and each chunk transforms only as many as its longest clip needs.
    After the FFT every step works in place, and the windowed frames reuse one buffer."""
    import scipy.fft  # several times faster than numpy.fft on float32 frames

    basis_t = _mel_basis_t(recipe)
    window = _window(recipe.window_length, recipe.n_fft)
    count, samples = batch.shape
    n_frames = centered_frames(samples, hop_length)
    live = _frames_with_sound(batch, recipe.n_fft, hop_length, n_frames)
    order = np.argsort(live, kind="stable")
    pad = recipe.n_fft // 2
    # center=True, constant padding; one more zero on the right for an odd FFT (1,323 points at 44.1 kHz),
    # so that frame t is centered on sample t * hop for every frame `centered_frames` counts.
    padded = np.zeros((count, samples + recipe.n_fft), dtype=np.float32)
    padded[:, pad:pad + samples] = batch[order]
    frames = np.lib.stride_tricks.sliding_window_view(padded, recipe.n_fft, axis=1)[:, ::hop_length]
    power = np.zeros((count, n_frames, recipe.n_mels), dtype=np.float32)
    windowed = np.empty((min(_STFT_CHUNK, count), n_frames, recipe.n_fft), dtype=np.float32)
    for start in range(0, count, _STFT_CHUNK):
        size, used = min(_STFT_CHUNK, count - start), int(live[order[min(start + _STFT_CHUNK, count) - 1]])
        if used == 0:
            continue
        buffer = windowed[:size, :used]
        np.multiply(frames[start:start + size, :used], window, out=buffer)
        spectrum = scipy.fft.rfft(buffer, axis=-1, workers=1)
        parts = spectrum.view(np.float32)  # real and imaginary parts, interleaved
        np.square(parts, out=parts)
        np.matmul(parts[..., 0::2] + parts[..., 1::2], basis_t, out=power[start:start + size, :used])
    return power[np.argsort(order)]


def _frames_with_sound(batch: np.ndarray, n_fft: int, hop_length: int, n_frames: int) -> np.ndarray:
    """Per clip, how many leading STFT frames hold a nonzero sample; all later frames are silent."""
    nonzero = batch != 0
    sound_ends = np.where(nonzero.any(axis=1), batch.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    # Frame t (centered) covers samples [t * hop - n_fft // 2, t * hop + n_fft // 2).
    needed = -(-(sound_ends + n_fft // 2) // hop_length)
    return np.minimum(needed, n_frames)


def _mel_basis_t(recipe: FeatureRecipe) -> np.ndarray:
    """The filterbank transposed and contiguous, (bins, n_mels), as the STFT's matrix product wants it."""
    key = ("transposed", *_mel_key(recipe))
    if key not in _MEL_BASES:
        _MEL_BASES[key] = np.ascontiguousarray(mel_basis(recipe).T)
    return _MEL_BASES[key]


PCEN_SETTINGS = {"time_constant": 0.4, "gain": 0.98, "bias": 2.0, "power": 0.5, "eps": 1e-6}
"""librosa.pcen's defaults (Wang et al. 2017's, for speech and birdsong; not tuned here)."""
PCEN_INPUT_SCALE = 2.0 ** 31
"""The mel power of a clip peaking at 1.0 is scaled by this first, as librosa's documentation does for
float audio, so that `eps` sits far below any sound."""


def pcen_batch(batch: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """(batch, samples) -> (batch, n_mels, frames): per-channel energy normalization of the mel power. Each
    band is divided by a smoothed copy of its own past (an automatic gain control, the smoother starting
    from near silence, a level of 1 in the scaled power, as librosa's does: the clip is cut at its onset),
    then root-compressed: a band's onsets stand out and its steady level drops out, whatever the recording
    chain did to that band's gain. Written here rather than calling librosa.pcen for the reason `mel_basis`
    gives: importing librosa costs every process that starts `infer` a second and 110 MB."""
    power = _mel_power(batch[:, : recipe.clip_samples], recipe, recipe.hop_length).astype(np.float64)
    power *= PCEN_INPUT_SCALE
    # the one-pole smoother's weight for the time constant in frames, by librosa.pcen's formula
    frames_per_constant = PCEN_SETTINGS["time_constant"] * recipe.sample_rate / recipe.hop_length
    weight = (math.sqrt(1 + 4 * frames_per_constant**2) - 1) / (2 * frames_per_constant**2)
    smoothed = np.empty_like(power)
    level = np.ones_like(power[:, 0])
    for frame in range(power.shape[1]):  # along time, every clip and band at once
        level = (1 - weight) * level + weight * power[:, frame]
        smoothed[:, frame] = level
    bias, exponent = PCEN_SETTINGS["bias"], PCEN_SETTINGS["power"]
    gained = power / (PCEN_SETTINGS["eps"] + smoothed) ** PCEN_SETTINGS["gain"]
    return ((gained + bias) ** exponent - bias**exponent).astype(np.float32).transpose(0, 2, 1)


def mfcc_batch(batch: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """(batch, samples) -> (batch, n_mfcc, frames) with librosa.feature.mfcc, clip by clip."""
    import librosa

    return np.stack([
        librosa.feature.mfcc(
            y=clip, sr=recipe.sample_rate, n_mfcc=recipe.n_mfcc, n_fft=recipe.n_fft,
            hop_length=recipe.hop_length, n_mels=recipe.n_mels, fmin=recipe.fmin, fmax=recipe.fmax,
        )
        for clip in batch
    ]).astype(np.float32)


def librosa_logmel(samples: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """One decoded clip's "logmel" features computed the slow, plain way with librosa, (n_mels, frames, 1):
    the reference that tests hold the fast path to, and the benchmark's reference pipeline."""
    import librosa

    samples = librosa.util.fix_length(samples[: recipe.total_samples], size=recipe.total_samples)
    if recipe.peak_normalize and np.abs(samples).max() > 0:
        samples = samples / np.abs(samples).max()

    def mel(part: np.ndarray, hop: int) -> np.ndarray:
        if recipe.n_fft % 2:  # librosa frames an odd FFT one short of the centered count; a zero restores it
            part = np.append(part, np.float32(0))
        return recipe.mel_gain * librosa.feature.melspectrogram(
            y=part, sr=recipe.sample_rate, n_fft=recipe.n_fft, win_length=recipe.win_length, hop_length=hop,
            n_mels=recipe.n_mels, fmin=recipe.fmin, fmax=recipe.fmax, pad_mode="constant")

    power = mel(samples[: recipe.clip_samples], recipe.hop_length)
    if recipe.tail_samples:
        power = np.concatenate([power, mel(samples[recipe.clip_samples:], recipe.tail_hop_length)], axis=1)
    return librosa.power_to_db(power, ref=1.0, top_db=recipe.top_db)[..., np.newaxis]


def features_at_rates(clips: list[np.ndarray], rates: list[int], recipe: FeatureRecipe) -> np.ndarray:
    """Model inputs for decoded clips each at its own rate (`FeatureRecipe.at_rate`), in their order:
    one batch per rate."""
    if len(set(rates)) == 1:
        at_rate = _at_rate_or_fail(recipe, rates[0])
        return compute_features(prepare_clips(clips, at_rate), at_rate)
    features = np.empty((len(clips), *recipe.input_shape), dtype=np.float32)
    for rate in sorted(set(rates)):
        rows = [row for row, clip_rate in enumerate(rates) if clip_rate == rate]
        at_rate = _at_rate_or_fail(recipe, rate)
        features[rows] = compute_features(prepare_clips([clips[row] for row in rows], at_rate), at_rate)
    return features


def _at_rate_or_fail(recipe: FeatureRecipe, rate: int) -> FeatureRecipe:
    at_rate = recipe.at_rate(rate)
    if at_rate is None:
        raise ValueError(f"the recipe has no {rate} Hz form: resample those clips to {recipe.sample_rate} Hz")
    return at_rate


def compute_features(batch: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """Model inputs for a batch of prepared clips, shaped (batch, *recipe.input_shape)."""
    bands = {"logmel": logmel_batch, "mfcc": mfcc_batch, "pcen": pcen_batch}[recipe.feature_type](batch, recipe)
    if recipe.layout == "frames_first":
        return np.ascontiguousarray(bands.transpose(0, 2, 1))
    return bands[..., np.newaxis]

"""Feature recipes: drumcat's log-mel, MFCC and PCEN equal librosa's, for every clip length."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest

from drumcat.audio.features import PCEN_INPUT_SCALE, FeatureRecipe, compute_features, mel_basis
from drumcat.audio.synth import render
from tests.helpers import MFCC


def one_second(instrument: str, seed: int) -> np.ndarray:
    clip = librosa.resample(render(instrument, seed=seed), orig_sr=44_100, target_sr=22_050)
    return librosa.util.fix_length(clip, size=22_050).astype(np.float32)


def test_mfcc_features_equal_librosa(tmp_path: Path) -> None:
    clips = np.stack([one_second(name, seed=3) for name in ("Kick", "Snare", "Crash")])
    ours = compute_features(clips.astype(np.float32), MFCC)[..., 0]
    reference = np.stack([librosa.feature.mfcc(y=c, sr=22_050, n_mfcc=40) for c in clips.astype(np.float32)])
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def test_logmel_features_equal_librosa() -> None:
    recipe = FeatureRecipe()
    clips = np.stack([one_second(name, seed=4) for name in ("Kick", "Hihat", "Ride")])
    ours = compute_features(clips, recipe)[..., 0]
    reference = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=c, sr=22_050, n_fft=1024, hop_length=256, n_mels=64, fmin=20.0, pad_mode="constant"), top_db=80.0)
        for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


def test_logmel_of_short_and_silent_clips_equals_librosa() -> None:
    """Clips of every length in one batch, one silent: the frames past a clip's sound are skipped, not
    computed, and the result is the same."""
    recipe = FeatureRecipe()
    lengths = [22_050, 300, 0, 5_000, 17_000, 1, 9_999, 22_050, 2_000, 12_345]
    clips = np.zeros((len(lengths), recipe.clip_samples), dtype=np.float32)
    for row, length in enumerate(lengths):
        clips[row, :length] = one_second("Snare", seed=row)[:length]
    ours = compute_features(clips, recipe)[..., 0]
    reference = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=c, sr=22_050, n_fft=1024, hop_length=256, n_mels=64, fmin=20.0, pad_mode="constant"), top_db=80.0)
        for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


def test_pcen_features_equal_librosa_pcen_of_the_same_mel_power() -> None:
    """Short, long and silent clips: each band against its own smoothed past, from silence, as librosa.pcen
    computes it with its defaults (the power scaled as its documentation scales float audio)."""
    recipe = FeatureRecipe(feature_type="pcen")
    clips = np.stack([one_second(name, seed=5) for name in ("Kick", "Hihat", "Crash", "Snare")])
    clips[1, 3_000:] = 0
    clips[3] = 0
    ours = compute_features(clips, recipe)[..., 0]
    reference = np.stack([librosa.pcen(PCEN_INPUT_SCALE * librosa.feature.melspectrogram(
        y=c, sr=22_050, n_fft=1024, hop_length=256, n_mels=64, fmin=20.0, pad_mode="constant"),
        sr=22_050, hop_length=256) for c in clips])
    assert ours.shape == (4, *recipe.input_shape[:2])
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    assert ours[3].max() == 0.0  # silence stays silence


@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (22_050, 1024, 64, 20.0, None), (16_000, 512, 40, 0.0, 8000.0), (44_100, 2048, 128, 30.0, 16_000.0),
    (44_100, 1323, 64, 20.0, 16_000.0)])  # an odd FFT: the shared grid at 44.1 kHz
def test_mel_filterbank_equals_librosa(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> None:
    recipe = FeatureRecipe(sample_rate=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    reference = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(mel_basis(recipe), reference, rtol=1e-5, atol=1e-8)


def test_hann_window_is_scipys_periodic_hann() -> None:
    import scipy.signal

    from drumcat.audio.features import _window

    np.testing.assert_allclose(_window(1024, 1024), scipy.signal.get_window("hann", 1024, fftbins=True), atol=1e-7)
    np.testing.assert_allclose(_window(1411, 1440), librosa.util.pad_center(
        scipy.signal.get_window("hann", 1411, fftbins=True), size=1440), atol=1e-7)


def test_multi_scale_logmel_equals_librosa_and_keeps_the_decay() -> None:
    """A recipe with a tail: the first second at full resolution, the next at a coarse hop, in one dB
    scale. Equal to librosa's, for long, short and silent clips; and a crash's tail frames hold its
    decay while a short hit's are at the floor."""
    from drumcat.audio.features import librosa_logmel, prepare_clips

    recipe = FeatureRecipe(tail_seconds=1.0, tail_hop_length=1024)
    assert recipe.input_shape == (64, 87 + 22, 1)
    crash = librosa.resample(render("Crash", seed=2), orig_sr=44_100, target_sr=22_050)
    kick = librosa.resample(render("Kick", seed=2), orig_sr=44_100, target_sr=22_050)
    clips = [crash, kick, np.zeros(10, np.float32), crash[:30_000]]
    ours = compute_features(prepare_clips(clips, recipe), recipe)
    reference = np.stack([librosa_logmel(c, recipe) for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)
    tail = ours[:, :, 87:, 0]
    floor = ours[:, :, :, 0].max(axis=(1, 2)) - recipe.top_db
    assert tail[0].max() > floor[0] + 30  # the crash still rings a second in
    assert tail[1].max() == pytest.approx(floor[1])  # the kick is over


NATIVE = FeatureRecipe(sample_rate=32_000, hop_length=384, native_rates=True)


def test_a_recipe_at_a_higher_rate_keeps_its_window_hops_and_bands_in_seconds_and_hz() -> None:
    assert NATIVE.at_rate(32_000) is NATIVE
    at_48k = NATIVE.at_rate(48_000)
    assert (at_48k.n_fft, at_48k.window_length, at_48k.hop_length, at_48k.fmax) == (1536, 1536, 576, 16_000.0)
    at_44k = NATIVE.at_rate(44_100)  # 1,411.2 samples of window, in an FFT size scipy computes fast
    assert (at_44k.n_fft, at_44k.window_length, at_44k.hop_length) == (1440, 1411, 529)
    for rate in (37_800, 44_100, 48_000, 88_200, 96_000, 192_000):
        assert NATIVE.at_rate(rate).input_shape == NATIVE.input_shape
    assert not at_44k.native_rates and "native_rates" not in FeatureRecipe().as_dict()


def test_logmel_with_a_shorter_window_and_a_gain_equals_librosa() -> None:
    """The derived recipes' STFT (window centered in a longer FFT, filterbank scaled) is librosa's."""
    from drumcat.audio.features import librosa_logmel, prepare_clips

    recipe = NATIVE.at_rate(44_100)
    clips = [render(name, seed=5)[:50_000] for name in ("Kick", "Hihat", "Crash")]
    ours = compute_features(prepare_clips(clips, recipe), recipe)
    reference = np.stack([librosa_logmel(c, recipe) for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_the_shared_grid_at_a_files_own_rate_equals_librosa_with_the_models_input_shape(rate: int) -> None:
    """`--recipe shared-grid` at 44.1 kHz is a 1,323-point FFT, odd: every centered frame is computed
    (librosa frames an odd FFT one short), the bins fall at its own frequencies, and the shape is the
    model's input, for full, short and silent clips."""
    from drumcat.audio.features import features_at_rates, librosa_logmel
    from drumcat.model.train.train import NAMED_RECIPES

    grid = NAMED_RECIPES["shared-grid"]
    clips = [render(name, seed=6)[:length] for name, length in (("Kick", 60_000), ("Crash", 44_100),
                                                                 ("Hihat", 3_000))] + [np.zeros(5, np.float32)]
    ours = features_at_rates(clips, [rate] * len(clips), grid)
    assert ours.shape == (len(clips), *grid.input_shape)
    reference = np.stack([librosa_logmel(c, grid.at_rate(rate)) for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


@pytest.mark.parametrize("rate", [44_100, 48_000, 96_000])
def test_native_rate_features_match_the_resampled_ones_for_sound_below_the_top_band(rate: int) -> None:
    """A sound with nothing above the recipe's 16 kHz gives nearly the features it gives resampled to
    32 kHz: the power scale is right (an FFT 1.5 times as long alone adds 3.5 dB at 48 kHz). What sound
    above 16 kHz changes (through each clip's peak normalization) is measured on real clips (README)."""
    from drumcat.audio.features import features_at_rates, prepare_clips
    from drumcat.audio.files import resample

    clips = []
    for seed, name in enumerate(("Kick", "Snare", "Hihat", "Crash", "Clap", "Tom")):
        at_32k = resample(render(name, seed=seed), 44_100, 32_000)
        clips.append(resample(at_32k, 32_000, rate))  # at `rate`, with nothing above 16 kHz
    resampled = compute_features(prepare_clips([resample(c, rate, 32_000) for c in clips], NATIVE), NATIVE)
    native = features_at_rates(clips, [rate] * len(clips), NATIVE)
    difference = native - resampled
    assert abs(float(difference.mean())) < 0.5 and float(np.abs(difference).mean()) < 1.0

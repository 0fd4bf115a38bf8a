"""Audio reading: the scan's in-memory PCM fast path must agree exactly with libsndfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from drumcat.audio.files import AudioReadError, _pcm_head, decode, read_info, resample
from drumcat.audio.synth import render

PCM_KINDS = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
             ("aiff", "PCM_16"), ("aiff", "PCM_24"), ("aiff", "PCM_32")]


def write_pcm(tmp_path: Path, ext: str, subtype: str, channels: int, rate: int) -> tuple[Path, np.ndarray]:
    """A one-shot in the given PCM layout; the second channel differs from the first."""
    mono = render("Snare", seed=7)
    samples = mono if channels == 1 else np.stack([mono, -0.3 * mono], axis=1)
    path = tmp_path / f"x.{ext}"
    sf.write(str(path), samples, rate, subtype=subtype)
    return path, mono


@pytest.mark.parametrize(("ext", "subtype"), PCM_KINDS)
@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_fast_path_equals_libsndfile(tmp_path: Path, ext: str, subtype: str, channels: int) -> None:
    path, mono = write_pcm(tmp_path, ext, subtype, channels, 48_000)
    fast = read_info(path, measure_levels=True, content=path.read_bytes())
    reference = read_info(path, measure_levels=True)
    assert fast == reference
    assert (fast.sample_rate, fast.channels, fast.frames) == (48_000, channels, mono.size)


def test_truncated_wav_is_detected_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(str(path), render("Crash", seed=1), 44_100)
    content = path.read_bytes()[:20_000]
    with pytest.raises(AudioReadError) as info:
        read_info(path, measure_levels=True, content=content)
    assert info.value.kind == "truncated"


@pytest.mark.parametrize("ext", ["wav", "aiff"])
def test_decode_reads_only_the_start_of_a_long_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"loop.{ext}"
    sf.write(str(path), np.random.default_rng(1).uniform(-0.5, 0.5, (441_000, 2)), 44_100, subtype="PCM_24")
    content, _layout = _pcm_head(path, max_seconds=1.0)
    assert len(content) < path.stat().st_size / 8  # 1 s of a 10 s file, plus the header
    reference, _ = sf.read(str(path), dtype="float32", always_2d=True, frames=44_101)
    np.testing.assert_array_equal(decode(path, 44_100, max_seconds=1.0), reference.mean(axis=1))


def test_resample_equals_soxr_for_clip_after_clip() -> None:
    """The kept resampler is cleared between clips: each result equals a fresh soxr.resample."""
    rng = np.random.default_rng(0)
    for source, target in [(44_100, 22_050), (48_000, 22_050), (44_100, 22_050), (8_000, 22_050)]:
        for length in (1, 100, 44_100, 5_000):
            clip = rng.uniform(-1, 1, length).astype(np.float32)
            np.testing.assert_array_equal(resample(clip, source, target),
                                          soxr.resample(clip, source, target, quality="HQ"))


def test_decode_downmixes_and_resamples(tmp_path: Path) -> None:
    mono = render("Kick", seed=2)
    path = tmp_path / "x.flac"
    sf.write(str(path), np.stack([mono, mono], axis=1), 44_100)
    out = decode(path, 22_050)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - mono.size // 2) <= 1


@pytest.mark.parametrize(("ext", "subtype"), PCM_KINDS)
@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_fast_decode_equals_libsndfile(tmp_path: Path, ext: str, subtype: str, channels: int) -> None:
    path, _ = write_pcm(tmp_path, ext, subtype, channels, 44_100)
    reference, _ = sf.read(str(path), dtype="float32", always_2d=True, frames=22_051)
    expected = reference.mean(axis=1) if channels == 2 else reference[:, 0]
    np.testing.assert_array_equal(decode(path, 44_100, max_seconds=0.5), expected)

"""Reading audio: header facts, levels, and decoding to mono float32 at a target sample rate.

soundfile (libsndfile) decodes WAV, AIFF, FLAC, OGG and MP3 without an external tool; soxr resamples.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from drumcat.paths import os_path

# Files larger than this are hashed and measured in blocks instead of being held in memory.
IN_MEMORY_LIMIT = 32 * 1024 * 1024
_BLOCK_FRAMES = 65_536


class AudioReadError(Exception):
    """A file that cannot be read as audio. `kind` is one of the catalog's error kinds."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AudioInfo:
    format: str
    subtype: str | None
    sample_rate: int
    channels: int
    frames: int
    peak_db: float | None = None
    rms_db: float | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def to_db(amplitude: float) -> float:
    """Amplitude to dBFS, floored at -120 dB so silence is a number, not -inf."""
    return round(20 * math.log10(max(amplitude, 1e-6)), 2)


def _open(source: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(os.fsencode(source))  # bytes: a name that is not UTF-8 opens too
    except sf.LibsndfileError as exc:
        # Code 1 is "format not recognised"; the MP3 decoder reports garbage as code 7 ("not a regular
        # file"), which for a file we could open means the same.
        if not source.is_file():
            raise AudioReadError("unreadable", "no such file") from exc
        if exc.code in (1, 7):
            raise AudioReadError("not_audio", "not a recognised audio file") from exc
        raise AudioReadError("decode_error", getattr(exc, "error_string", "") or str(exc)) from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AudioReadError("decode_error", str(exc)) from exc


@dataclass(frozen=True)
class _PcmLayout:
    """Where the samples of an uncompressed WAV or AIFF file are, read from its chunk headers."""

    format: str
    sample_rate: int
    channels: int
    bits: int
    is_float: bool
    big_endian: bool
    data_offset: int
    data_size: int  # as declared in the header


def _chunks(content: bytes, first: int, order: str) -> dict[bytes, tuple[int, int]]:
    found, offset = {}, first
    while offset + 8 <= len(content):
        chunk_id, size = content[offset:offset + 4], int.from_bytes(content[offset + 4:offset + 8], order)
        found.setdefault(chunk_id, (offset + 8, size))
        offset += 8 + size + (size & 1)
    return found


def _aiff_rate(extended: bytes) -> int:
    """AIFF stores its sample rate as an 80-bit IEEE extended float."""
    exponent = int.from_bytes(extended[:2], "big") & 0x7FFF
    mantissa = int.from_bytes(extended[2:10], "big")
    return round(mantissa * 2.0 ** (exponent - 16383 - 63))


def _pcm_layout(content: bytes) -> _PcmLayout | None:
    """The layout of a plain PCM WAV or AIFF file, or None for anything else (libsndfile handles those)."""
    if content[:4] == b"RIFF" and content[8:12] == b"WAVE":
        chunks = _chunks(content, 12, "little")
        if b"fmt " not in chunks or b"data" not in chunks:
            return None
        at, _ = chunks[b"fmt "]
        tag, channels, rate = (int.from_bytes(content[at:at + 2], "little"),
                               int.from_bytes(content[at + 2:at + 4], "little"),
                               int.from_bytes(content[at + 4:at + 8], "little"))
        bits = int.from_bytes(content[at + 14:at + 16], "little")
        if (tag, bits) not in ((1, 16), (1, 24), (1, 32), (3, 32)):
            return None
        data_at, data_size = chunks[b"data"]
        return _PcmLayout("WAV", rate, channels, bits, tag == 3, False, data_at, data_size)
    if content[:4] == b"FORM" and content[8:12] == b"AIFF":
        chunks = _chunks(content, 12, "big")
        if b"COMM" not in chunks or b"SSND" not in chunks:
            return None
        at, _ = chunks[b"COMM"]
        channels, bits = int.from_bytes(content[at:at + 2], "big"), int.from_bytes(content[at + 6:at + 8], "big")
        if bits not in (16, 24, 32):
            return None
        data_at, data_size = chunks[b"SSND"]
        offset = int.from_bytes(content[data_at:data_at + 4], "big")
        return _PcmLayout("AIFF", _aiff_rate(content[at + 8:at + 18]), channels, bits, False, True,
                          data_at + 8 + offset, data_size - 8 - offset)
    return None


def _pcm_values(content: bytes, layout: _PcmLayout, offset: int, count: int) -> tuple[np.ndarray, float]:
    """`count` interleaved samples from byte `offset`, without copying the whole file, and the full-scale
    value they divide by: float32 samples (scale 1.0) or int32 samples (scale 2**(bits - 1)).

    Integers are widened to int32 before any float conversion: numpy converts int16 to float32 slower
    directly than through int32.
    """
    order = ">" if layout.big_endian else "<"
    if layout.is_float:
        return np.frombuffer(content, dtype=f"{order}f4", count=count, offset=offset).astype(np.float32), 1.0
    if layout.bits == 24 and not layout.big_endian and offset > 0:
        # Read 4 bytes every 3, starting one byte early: each int32 holds a sample in its top 24 bits
        # (plus a stray low byte that the shift drops). No copy, one pass.
        overlapping = np.ndarray((count,), dtype="<i4", buffer=content, offset=offset - 1, strides=(3,))
        return overlapping >> 8, float(1 << 23)
    if layout.bits == 24:
        triples = np.frombuffer(content, dtype=np.uint8, count=count * 3, offset=offset).reshape(-1, 3)
        padded = np.zeros((count, 4), dtype=np.uint8)
        if layout.big_endian:
            padded[:, :3] = triples
            return padded.view(">i4").ravel() >> 8, float(1 << 23)
        padded[:, 1:] = triples
        return padded.view("<i4").ravel() >> 8, float(1 << 23)
    ints = np.frombuffer(content, dtype=f"{order}i{layout.bits // 8}", count=count, offset=offset)
    return ints.astype(np.int32), float(1 << (layout.bits - 1))


_LEVEL_BLOCK = 16_384  # samples per step: temporaries stay in the CPU cache, which matters more than SIMD


def _pcm_levels(content: bytes, layout: _PcmLayout) -> tuple[float, float, int]:
    """Peak, mean square and sample count of PCM data, straight from its bytes (the scan's fast path).

    Works block by block, so its temporaries stay in the CPU cache.
    """
    width = layout.bits // 8
    available = min(layout.data_size, len(content) - layout.data_offset)
    count = available // (width * layout.channels) * layout.channels
    peak, sum_squares = 0.0, 0.0
    for start in range(0, count, _LEVEL_BLOCK):
        n = min(_LEVEL_BLOCK, count - start)
        values, scale = _pcm_values(content, layout, layout.data_offset + start * width, n)
        block_peak = max(float(values.max()), -float(values.min()))
        floats = values.astype(np.float32)
        peak = max(peak, block_peak / scale)
        sum_squares += float(np.dot(floats, floats)) / (scale * scale)
    return peak, sum_squares / max(count, 1), count


def _pcm_info(content: bytes, measure_levels: bool) -> AudioInfo | None:
    """Facts of an uncompressed WAV/AIFF read straight from its bytes; None if it is not one."""
    layout = _pcm_layout(content)
    if layout is None or layout.channels < 1 or layout.sample_rate < 1:
        return None
    available = len(content) - layout.data_offset
    if layout.data_size > available:
        raise AudioReadError(
            "truncated", f"the audio data is cut short: {layout.data_size - available} bytes missing"
        )
    frames = layout.data_size // (layout.bits // 8 * layout.channels)
    if frames == 0:
        raise AudioReadError("decode_error", "the file holds no audio frames")
    subtype = "FLOAT" if layout.is_float else f"PCM_{layout.bits}"
    peak_db = rms_db = None
    if measure_levels:
        peak, mean_square, _count = _pcm_levels(content, layout)
        peak_db, rms_db = to_db(peak), to_db(math.sqrt(mean_square))
    return AudioInfo(layout.format, subtype, layout.sample_rate, layout.channels, frames, peak_db, rms_db)


def read_info(source: Path, *, measure_levels: bool, content: bytes | None = None) -> AudioInfo:
    """Header facts and, if asked, peak and RMS level over all channels.

    `content`, when the caller already holds the file's bytes, lets plain PCM WAV and AIFF files be
    measured straight from memory, several times faster than going through libsndfile.
    """
    if content is not None and (info := _pcm_info(content, measure_levels)) is not None:
        return info
    with _open(source) as f:
        header_frames = f.frames
        peak_db = rms_db = None
        if measure_levels:
            peak, sum_squares, frames = _levels(f)
            if frames == 0:
                raise AudioReadError("decode_error", "the file holds no audio frames")
            if frames < header_frames * 0.99:
                raise AudioReadError(
                    "truncated", f"the header promises {header_frames} frames, only {frames} decode"
                )
            peak_db, rms_db = to_db(peak), to_db(math.sqrt(sum_squares / (frames * f.channels)))
        elif header_frames <= 0:
            raise AudioReadError("decode_error", "the file holds no audio frames")
        else:
            frames = header_frames
        return AudioInfo(f.format, f.subtype, f.samplerate, f.channels, frames, peak_db, rms_db)


def _levels(f: sf.SoundFile) -> tuple[float, float, int]:
    """Peak, sum of squares and decoded frame count, block by block so long files stay small in memory."""
    peak, sum_squares, frames = 0.0, 0.0, 0
    try:
        while True:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            flat = block.ravel()
            peak = max(peak, float(np.abs(flat).max()))
            sum_squares += float(np.dot(flat, flat))
            frames += block.shape[0]
    except sf.LibsndfileError as exc:
        raise AudioReadError("decode_error", getattr(exc, "error_string", "") or str(exc)) from exc
    return peak, sum_squares, frames


def _pcm_frames(content: bytes, layout: _PcmLayout, max_frames: int) -> np.ndarray:
    """(frames, channels) float32 straight from PCM bytes, scaled exactly as libsndfile scales them."""
    available = min(layout.data_size, len(content) - layout.data_offset) // (layout.bits // 8 * layout.channels)
    count = (available if max_frames < 0 else min(available, max_frames)) * layout.channels
    values, scale = _pcm_values(content, layout, layout.data_offset, count)
    samples = values.astype(np.float32)
    if scale != 1.0:
        samples *= np.float32(1.0 / scale)
    return samples.reshape(-1, layout.channels)


def _pcm_mono(content: bytes, layout: _PcmLayout, max_frames: int) -> np.ndarray:
    """Mono float32 straight from PCM bytes: the same samples as `downmix(_pcm_frames(...))`, in two
    passes instead of five. Channels of up to 24 bits are summed as integers (exact in int32), then
    scaled once; the rounding equals libsndfile's float samples averaged (tests/test_audio.py)."""
    if layout.is_float or layout.bits > 24 or layout.channels == 1:
        return downmix(_pcm_frames(content, layout, max_frames))
    available = min(layout.data_size, len(content) - layout.data_offset) // (layout.bits // 8 * layout.channels)
    count = (available if max_frames < 0 else min(available, max_frames)) * layout.channels
    if layout.bits == 16:  # summed straight from the int16 samples, without widening them first
        order = ">" if layout.big_endian else "<"
        values = np.frombuffer(content, dtype=f"{order}i2", count=count, offset=layout.data_offset)
        scale = float(1 << 15)
    else:
        values, scale = _pcm_values(content, layout, layout.data_offset, count)
    interleaved = values.reshape(-1, layout.channels)
    total = np.add(interleaved[:, 0], interleaved[:, 1], dtype=np.int32)
    for channel in range(2, layout.channels):
        total += interleaved[:, channel]
    return np.multiply(total, np.float32(1.0 / (scale * layout.channels)), dtype=np.float32)


def decode(path: Path | str, sample_rate: int, *, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 samples at `sample_rate`, reading at most `max_seconds` of the file (a catalogued path
    in the catalog's text form is opened as the file it names: drumcat/paths.py)."""
    mono, native_rate = _read_audio(path, max_seconds)
    return resample(mono, native_rate, sample_rate)


def decode_native(path: Path | str, min_rate: int, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate: the file's own rate, or `min_rate` for a file recorded below it
    (resampled up), reading at most `max_seconds` of the file."""
    mono, native_rate = _read_audio(path, max_seconds)
    if native_rate < min_rate:
        return resample(mono, native_rate, min_rate), min_rate
    return mono, native_rate


def _read_audio(path: Path | str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    mono, native_rate = _read_mono(Path(os_path(str(path))), max_seconds)
    if mono.shape[0] == 0:
        raise AudioReadError("decode_error", "the file holds no audio frames")
    return mono, native_rate


def _frame_limit(max_seconds: float | None, rate: int) -> int:
    return -1 if max_seconds is None else int(math.ceil(max_seconds * rate)) + 1


def _read_mono(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's sample rate.

    Plain PCM WAV and AIFF files are decoded from their bytes (the same samples libsndfile gives, at a
    third of the cost: this is most of an archive); everything else goes through libsndfile.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioReadError("unreadable", exc.strerror or str(exc)) from exc
    if size <= IN_MEMORY_LIMIT and path.suffix.lower() in (".wav", ".aif", ".aiff"):
        head = _pcm_head(path, max_seconds)
        if head is not None:
            content, layout = head
            return _pcm_mono(content, layout, _frame_limit(max_seconds, layout.sample_rate)), layout.sample_rate
    with _open(path) as f:
        try:
            data = f.read(frames=_frame_limit(max_seconds, f.samplerate), dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            raise AudioReadError("decode_error", str(exc)) from exc
        return downmix(data), f.samplerate


_HEADER_BYTES = 64 * 1024  # WAV/AIFF chunk headers before the samples fit in this in practice


def _pcm_head(path: Path, max_seconds: float | None) -> tuple[bytes, _PcmLayout] | None:
    """The bytes of a plain PCM WAV/AIFF file up to the last sample `max_seconds` needs (a 10 s loop is
    not read whole for a 1 s clip), and its layout; None if it is not such a file, or if its samples
    start past the first 64 KB (libsndfile reads those)."""
    try:
        with open(path, "rb") as handle:
            content = handle.read(_HEADER_BYTES)
            layout = _pcm_layout(content)
            if layout is None or layout.channels < 1 or layout.sample_rate < 1 or layout.data_offset > len(content):
                return None
            frame_bytes = layout.bits // 8 * layout.channels
            frames = _frame_limit(max_seconds, layout.sample_rate)
            wanted = layout.data_size if frames < 0 else min(layout.data_size, frames * frame_bytes)
            if layout.data_offset + wanted > len(content):
                content += handle.read(layout.data_offset + wanted - len(content))
    except OSError as exc:
        raise AudioReadError("unreadable", exc.strerror or str(exc)) from exc
    return content, layout


def downmix(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono, channel by channel: several times faster than mean(axis=1)."""
    mono = np.ascontiguousarray(frames[:, 0], dtype=np.float32)
    if frames.shape[1] > 1:
        for channel in range(1, frames.shape[1]):
            mono += frames[:, channel]
        mono *= 1.0 / frames.shape[1]
    return mono


_resamplers = threading.local()


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """soxr's high-quality resampler (librosa's default, "soxr_hq"). One resampler per rate pair is kept
    and cleared between clips: the same samples as `soxr.resample` (tested), without designing its
    filter again for every file."""
    if source_rate == target_rate:
        return samples
    import soxr  # imported lazily: only decoding at another rate needs it

    streams = _resamplers.__dict__
    stream = streams.get((source_rate, target_rate))
    if stream is None:
        stream = streams[(source_rate, target_rate)] = soxr.ResampleStream(
            source_rate, target_rate, 1, dtype="float32", quality="HQ")
    try:
        return stream.resample_chunk(np.ascontiguousarray(samples, dtype=np.float32), last=True)
    finally:
        stream.clear()


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad at the end to exactly `length` samples (one-shots start at the onset)."""
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))

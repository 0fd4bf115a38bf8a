"""Waveform thumbnails: a sound's peak envelope as a small SVG, cached by content hash.

The envelope is the peak of |x| in each of WIDTH columns over the first seconds of the file, mirrored
around the middle line, drawn as one filled path. Decoding at 8 kHz is plenty for a 240-pixel picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drumcat.audio.files import decode
from drumcat.staging import write_whole

WIDTH, HEIGHT = 240, 48
RATE = 8_000
SECONDS = 4.0


def envelope(samples: np.ndarray, columns: int = WIDTH) -> np.ndarray:
    """Peak |sample| per column, scaled so the loudest column is 1 (silence stays 0)."""
    if samples.size == 0:
        return np.zeros(columns)
    padded = np.zeros(int(np.ceil(samples.size / columns)) * columns, dtype=np.float32)
    padded[: samples.size] = np.abs(samples)
    peaks = padded.reshape(columns, -1).max(axis=1)
    top = peaks.max()
    return peaks / top if top > 0 else peaks


def svg(peaks: np.ndarray) -> str:
    middle = HEIGHT / 2
    upper = " ".join(f"{x},{middle - p * (middle - 1):.1f}" for x, p in enumerate(peaks))
    lower = " ".join(f"{x},{middle + p * (middle - 1):.1f}" for x, p in reversed(list(enumerate(peaks))))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}"><path d="M{upper} L{lower} Z" fill="#4a7fb5"/></svg>')


def thumbnail(path: Path, cache_dir: Path, digest: str) -> str:
    """The SVG of a sound, from the cache when it is there (a sound's content never changes: its hash)."""
    cached = cache_dir / f"{digest}.svg"
    try:
        return cached.read_text()
    except FileNotFoundError:
        pass
    picture = svg(envelope(decode(path, RATE, max_seconds=SECONDS)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    # two requests may draw it at once: each writes its own hidden file; a folder of one file per sound is
    # not looked through for a killed request's leftover on every picture
    write_whole(cached, picture, sweep=False)
    return picture

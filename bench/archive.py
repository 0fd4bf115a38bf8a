"""The benchmarks' shared test archive: realistic one-shots, generated once and reused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.synth import INSTRUMENTS, render  # noqa: E402


def make_archive(root: Path, count: int) -> list[Path]:
    """`count` distinct one-shots shaped like a producer's: WAV, stereo, half 16-bit and half 24-bit,
    0.25 to 1.5 s at 44.1 kHz (about 70 to 400 KB each), in 100-file vendor folders. Reused if present."""
    existing = sorted(root.rglob("*.wav"))
    if len(existing) >= count:
        return existing[:count]
    bases = [render(name, seed) for name in INSTRUMENTS for seed in range(4)]
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        base = bases[index % len(bases)]
        length = int(rng.uniform(0.25, 1.5) * 44_100)
        mono = np.pad(base, (0, max(0, length - base.size)))[:length]
        clip = np.stack([mono, 0.8 * mono], axis=1)
        clip[-1, 0] = rng.uniform(-0.5, 0.5)  # distinct content, distinct hash
        path = root / f"vendor{index // 100:04d}" / f"smp{index:06d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), clip, 44_100, subtype="PCM_24" if index % 2 else "PCM_16")
        paths.append(path)
    return paths

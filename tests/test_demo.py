"""The demo archive knows what each of its files is (docs/screenshot.py decides sounds with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from drumcat.audio.synth import INSTRUMENTS, render
from drumcat.commands.demo import PER_INSTRUMENT, build_demo_archive, instrument_of


def test_instrument_of_names_the_recipe_each_demo_file_was_rendered_from(tmp_path: Path) -> None:
    build_demo_archive(tmp_path / "archive")
    files = sorted((tmp_path / "archive").rglob("smp_*.wav"))
    assert files
    for path in files:
        samples, _ = sf.read(path, dtype="float32")
        serial = int(path.stem.removeprefix("smp_"))
        assert np.allclose(samples, render(instrument_of(path), seed=serial), atol=1e-3)
    named = {instrument_of(f"smp_{serial:04d}.wav") for serial in range(len(INSTRUMENTS) * PER_INSTRUMENT)}
    assert named == set(INSTRUMENTS)
    assert instrument_of(tmp_path / "archive" / "misc" / "copy of smp_0000.wav") == instrument_of("smp_0000.wav")

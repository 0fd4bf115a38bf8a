"""The demo archive knows what each of its files is (docs/screenshot.py decides sounds with it), and replaces
no folder but an earlier demo archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumcat.audio.synth import INSTRUMENTS, render
from drumcat.commands.demo import PER_INSTRUMENT, build_demo_archive, instrument_of
from drumcat.errors import DrumcatError
from tests.helpers import drumcat


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


def test_demo_archive_replaces_only_a_demo_archive(tmp_path: Path) -> None:
    """`drumcat demo-archive ~/Samples` deleted the folder whole before writing the demo into it."""
    library = tmp_path / "Samples"
    (library / "Vendor").mkdir(parents=True)
    (library / "Vendor" / "kick.wav").write_bytes(b"the user's")
    result = drumcat("demo-archive", str(library), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a demo archive" in result.stderr
    assert [p.name for p in library.rglob("*")] == ["Vendor", "kick.wav"]

    demo = tmp_path / "demo"
    first = build_demo_archive(demo)
    assert build_demo_archive(demo) == first  # an earlier demo is replaced
    (demo / "misc" / "mine.wav").write_bytes(b"the user's")
    with pytest.raises(DrumcatError, match="mine.wav"):
        build_demo_archive(demo)
    assert (demo / "misc" / "mine.wav").read_bytes() == b"the user's"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_demo_archive(empty) == first

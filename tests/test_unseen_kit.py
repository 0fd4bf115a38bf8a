"""bench/unseen_kit.py: a multi-microphone kit's hits rendered as one-shots `drumcat evaluate` reads."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.unseen_kit import PEAK, hits, mixed, read_once, renders
from drumcat.model.evaluate import read_labeled

RATE = 44_100
MICROPHONES = ("AmbL", "AmbR", "OHL", "OHR", "KdrumL", "Snare_top", "Trigger")


def write_kit(root: Path) -> Path:
    """Two kick hits and one crash hit, each as one mono FLAC per microphone (the kit's own layout), each
    microphone a decaying tone of its own level so a render's content tells which files it summed."""
    samples = root / "DrumGizmo" / "MuldjordKit" / "Samples"
    t = np.arange(RATE // 2) / RATE
    for instrument, number in (("KdrumL", 1), ("KdrumL", 2), ("CrashL", 1)):
        folder = samples / instrument
        folder.mkdir(parents=True, exist_ok=True)
        for level, microphone in enumerate(MICROPHONES, start=1):
            tone = 0.01 * level * np.sin(2 * np.pi * 110 * level * t) * np.exp(-6 * t)
            sf.write(str(folder / f"{number}-{instrument}-{microphone}.flac"), tone.astype(np.float32), RATE)
    return samples


def test_hits_group_each_hits_microphones(tmp_path: Path) -> None:
    found = hits(write_kit(tmp_path))
    assert [(instrument, number) for instrument, number, _ in found] == [("CrashL", "1"), ("KdrumL", "1"),
                                                                         ("KdrumL", "2")]
    assert all(set(mics) == set(MICROPHONES) for _, _, mics in found)


def test_a_render_sums_its_microphones_and_leaves_out_the_trigger(tmp_path: Path) -> None:
    (_, _, crash), (_, _, kick), _ = hits(write_kit(tmp_path))
    kick_renders, crash_renders = renders("KdrumL", kick), renders("CrashL", crash)
    assert kick_renders["close"] == ["KdrumL"]
    assert crash_renders["close"] == []  # no close microphone: not the overheads' render a second time
    assert crash_renders["overheads"] == ["OHL", "OHR"]
    assert "Trigger" not in kick_renders["full"]
    assert len(kick_renders["full"]) == len(MICROPHONES) - 1
    recordings = read_once(kick, set(kick_renders["full"]))
    full, rate = mixed(recordings, kick_renders["full"], tmp_path)
    assert rate == RATE
    assert abs(np.abs(full).max() - PEAK) < 1e-6
    expected = sum(sf.read(str(kick[m]), dtype="float64")[0] for m in kick_renders["full"])
    np.testing.assert_allclose(full, expected * (PEAK / np.abs(expected).max()), atol=1e-6)


def test_a_hit_reads_each_microphone_file_once_and_never_the_trigger(tmp_path: Path) -> None:
    _, (_, _, kick), _ = hits(write_kit(tmp_path))
    wanted = renders("KdrumL", kick)
    recordings = read_once(kick, {m for microphones in wanted.values() for m in microphones})
    assert set(recordings) == set(MICROPHONES) - {"Trigger"}
    for render, microphones in wanted.items():  # every render mixes from what was read, nothing again
        assert set(microphones) <= set(recordings), render


def test_the_command_writes_renders_and_a_csv_evaluate_reads(tmp_path: Path) -> None:
    write_kit(tmp_path / "kit")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "bench/unseen_kit.py", "--kit", str(tmp_path / "kit"), "--out", str(out)],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=True)
    assert "11 one-shots of 3 hits" in result.stdout
    with (out / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["kit"] for r in rows} == {"muldjord-close", "muldjord-overheads", "muldjord-room", "muldjord-full"}
    assert sorted({r["label"] for r in rows}) == ["Crash", "Kick"]
    pairs = read_labeled(out / "labels.csv")
    assert len(pairs) == 11 and all(Path(path).is_file() for path, _ in pairs)

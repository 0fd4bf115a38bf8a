"""A model on a recorded acoustic kit it never trained on: each hit of the MuldjordKit (DrumGizmo's Tama
Superstar kit, CC BY 4.0, the SFZ release at github.com/sfzinstruments/DrumGizmo.MuldjordKit) rendered
from its 16 mono microphone files as up to four one-shots, and the labeled CSV that `drumcat evaluate` reads.

    python bench/unseen_kit.py [--kit build/sources/DrumGizmo.MuldjordKit] [--out build/unseen/muldjord]
    drumcat evaluate build/unseen/muldjord/labels.csv

The renders of a hit: `close` (its own close microphone; none for the crashes and the china, which have
none), `overheads` (the overhead pair), `room` (the two ambience microphones) and `full` (every microphone
but the trigger). Each is the mono sum, peak-normalized to -1 dBFS, as a 24-bit WAV; the CSV's
kit column names the render, so `evaluate` reports each as a group.

This is a survey of a source proposed for training (issue #13), not a training source: nothing here feeds
`make dataset`, and the kit stays out of every training run until a maintainer accepts it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.files import downmix  # noqa: E402

# The kit's instrument folders: the fine class each is (drumcat/taxonomy.py) and its close microphones.
# SnareRest is the snare struck with the stick resting on the head, a snare sound. The crashes and the
# china have no close microphone: their close render would be the overheads' again.
PIECES: dict[str, tuple[str, tuple[str, ...]]] = {
    "China": ("China", ()), "CrashL": ("Crash", ()), "CrashR": ("Crash", ()),
    "HihatClosed": ("Hihat", ("Hihat",)), "HihatOpen": ("Hihat", ("Hihat",)),
    "KdrumL": ("Kick", ("KdrumL",)), "KdrumR": ("Kick", ("KdrumR",)),
    "RideL": ("Ride", ("RideL",)), "RideLBell": ("Ride", ("RideL",)),
    "RideR": ("Ride", ("RideR",)), "RideRBell": ("Ride", ("RideR",)),
    "Snare": ("Snare", ("Snare_top",)), "SnareRest": ("Snare", ("Snare_top",)),
    "Tom1": ("Tom", ("Tom1",)), "Tom2": ("Tom", ("Tom2",)), "Tom3": ("Tom", ("Tom3",)), "Tom4": ("Tom", ("Tom4",)),
}
OVERHEADS, ROOM = ("OHL", "OHR"), ("AmbL", "AmbR")
PEAK = 10 ** (-1 / 20)


def hits(samples: Path) -> list[tuple[str, str, dict[str, Path]]]:
    """(instrument, hit number, {microphone: file}) for every hit in the kit's Samples/ folder."""
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for path in sorted(samples.glob("*/*.flac")):
        number, instrument, microphone = path.stem.split("-", 2)
        found.setdefault((instrument, number), {})[microphone] = path
    return [(instrument, number, mics) for (instrument, number), mics in sorted(found.items())]


def read_once(mics: dict[str, Path], needed: set[str]) -> dict[str, tuple[np.ndarray, int]]:
    """The microphone files a hit's renders sum, each read once: every file `full` sums is in another
    render too."""
    return {microphone: sf.read(str(mics[microphone]), dtype="float32", always_2d=True) for microphone in needed}


def mixed(recordings: dict[str, tuple[np.ndarray, int]], microphones: list[str], where: Path) -> tuple[np.ndarray, int]:
    """The mono sum of time-aligned microphone recordings, peak-normalized."""
    parts, rates = zip(*(recordings[m] for m in microphones), strict=True)
    if len(set(rates)) != 1:
        raise SystemExit(f"{where}: its microphones have different sample rates {sorted(set(rates))}")
    length = max(p.shape[0] for p in parts)
    total = np.zeros(length, dtype=np.float64)
    for part in parts:
        total[: part.shape[0]] += downmix(part)
    peak = np.abs(total).max()
    return (total * (PEAK / peak) if peak > 0 else total).astype(np.float32), rates[0]


def renders(instrument: str, mics: dict[str, Path]) -> dict[str, list[str]]:
    """The microphones each render of a hit sums."""
    return {
        "close": [m for m in PIECES[instrument][1] if m in mics],
        "overheads": [m for m in OVERHEADS if m in mics],
        "room": [m for m in ROOM if m in mics],
        "full": [m for m in mics if m != "Trigger"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, default=Path("build/sources/DrumGizmo.MuldjordKit"))
    parser.add_argument("--out", type=Path, default=Path("build/unseen/muldjord"))
    args = parser.parse_args()
    samples = args.kit / "DrumGizmo" / "MuldjordKit" / "Samples"
    if not samples.is_dir():
        raise SystemExit(f"{samples}: not found; `git clone` github.com/sfzinstruments/DrumGizmo.MuldjordKit "
                         f"into {args.kit}")
    rows = []
    for instrument, number, mics in hits(samples):
        if instrument not in PIECES:
            print(f"skipped {instrument}: no reviewed label", file=sys.stderr)
            continue
        wanted = renders(instrument, mics)
        recordings = read_once(mics, {m for microphones in wanted.values() for m in microphones})
        for render, microphones in wanted.items():
            if not microphones:
                continue
            samples_out, rate = mixed(recordings, microphones, mics[microphones[0]].parent)
            path = args.out / render / f"{instrument}-{int(number):03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), samples_out, rate, subtype="PCM_24")
            rows.append({"path": str(path.relative_to(args.out)), "label": PIECES[instrument][0],
                         "kit": f"muldjord-{render}"})
    with (args.out / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "kit"])
        writer.writeheader()
        writer.writerows(rows)
    hit_count = len({Path(row["path"]).name for row in rows})
    print(f"{len(rows)} one-shots of {hit_count} hits written to {args.out}; labels in {args.out / 'labels.csv'}")


if __name__ == "__main__":
    main()

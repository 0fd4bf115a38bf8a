"""Can one sound tell a drum machine's cymbal from its open hat? Decay and brightness, machine by machine.

Many analog and early digital machines make their cymbal from the same metallic source as their hats
(the TR-808's six square waves, the CR-78's and TR-606's); what makes it the cymbal is that it rings
longer or lower *than that machine's hats*. A classifier that hears one sound at a time sees only the
sound. This prints, for each machine of the training and validation kits that holds a cymbal (Crash,
Ride or their fine classes) and a hat, every such clip's decay time (to -30 dB below its peak) and
spectral centroid over the first 50 ms, and what a kit-fold run filed it under, if given one:

    python bench/analog_cymbals.py [--dataset build/dataset] [--fold-probabilities A.npz [B.npz ...]]

With several probability files, their normalized geometric mean is the call (as one model averaging
the runs' logits, `drumcat train --members`, would file it). The test kits are
never read. The last lines count the cymbals whose decay and centroid both fall inside the range of
some machine's open hats (hats ringing 0.25 s or more).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fold_decisions import geometric_mean  # noqa: E402
from drumcat.audio.files import decode  # noqa: E402
from drumcat.taxonomy import canonical, core_decisions  # noqa: E402

RATE = 22_050
HOP = 256
METALLIC = ("Crash", "Ride", "Hihat")
OPEN_HAT_SECONDS = 0.25


def decay_and_centroid(samples: np.ndarray) -> tuple[float, float]:
    """Seconds from the loudest frame until the level stays 30 dB below it; centroid (Hz) of its first 50 ms."""
    padded = np.pad(samples, (0, max(0, 1024 - samples.size)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, 1024)[::HOP] * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1) + 1e-12
    peak = int(energy.argmax())
    level = 10 * np.log10(energy[peak:] / energy[peak])
    loud = np.flatnonzero(level > -30)
    decay = (loud[-1] + 1) * HOP / RATE
    start = power[peak:peak + max(1, int(0.05 * RATE / HOP))].sum(axis=0)
    freqs = np.fft.rfftfreq(1024, 1 / RATE)
    return decay, float((start * freqs).sum() / start.sum())


def fold_calls(files: list[Path]) -> dict[str, str]:
    """Clip path -> the core class the runs' averaged out-of-fold probabilities file it under."""
    runs = [np.load(f) for f in files]
    classes = [str(c) for c in runs[0]["classes"]]
    labels = core_decisions(geometric_mean([r["probabilities"] for r in runs]), classes).labels
    return dict(zip((str(p) for p in runs[0]["paths"]), labels, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--fold-probabilities", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    calls = fold_calls(args.fold_probabilities) if args.fold_probabilities else {}
    by_machine: dict[str, list[dict]] = defaultdict(list)
    with (args.dataset / "manifest.csv").open() as handle:
        for row in csv.DictReader(handle):
            core = canonical(row["label"])
            if row["split"] != "test" and row["kit"].startswith("machine:") and core in METALLIC:
                by_machine[row["kit"]].append({**row, "core": core})
    open_hats, cymbals = [], []
    for machine, rows in sorted(by_machine.items()):
        cores = {r["core"] for r in rows}
        if "Hihat" not in cores or cores == {"Hihat"}:  # a machine with hats and a cymbal, or nothing to compare
            continue
        print(machine)
        for row in sorted(rows, key=lambda r: r["core"]):
            decay, centroid = decay_and_centroid(decode(args.dataset / row["path"], RATE))
            filed = calls.get(row["path"], "")
            if row["core"] == "Hihat" and decay >= OPEN_HAT_SECONDS:
                open_hats.append((decay, centroid))
            elif row["core"] != "Hihat":
                cymbals.append((decay, centroid, filed == row["core"]))
            print(f"  {row['core']:6} decay {decay:4.2f} s  centroid {centroid:5.0f} Hz"
                  f"{'  filed ' + filed if filed else ''}  {row['origin']}")
    hats = np.array(open_hats)
    inside = [c for c in cymbals if hats[:, 0].min() <= c[0] <= hats[:, 0].max()
              and hats[:, 1].min() <= c[1] <= hats[:, 1].max()]
    print(f"open hats (decay >= {OPEN_HAT_SECONDS} s): {len(hats)}, decay {hats[:, 0].min():.2f}-"
          f"{hats[:, 0].max():.2f} s, centroid {hats[:, 1].min():.0f}-{hats[:, 1].max():.0f} Hz")
    print(f"cymbals: {len(cymbals)}; inside the open hats' decay and centroid range: {len(inside)}")
    if calls:
        print(f"filed right by the runs: {sum(c[2] for c in cymbals)} of {len(cymbals)}; "
              f"of those inside the hats' range: {sum(c[2] for c in inside)} of {len(inside)}")


if __name__ == "__main__":
    main()

"""What near-silence in front of a sound does to a model, with and without its clip cut at the onset.

Producers' files do not all start on the hit: an export from a DAW, a sampled hardware pad or a gated
recording can hold tens of milliseconds of near-silence first. The default model trained on clips cut
at their onset (`dataset.to_clip`); `infer` does the same for a recipe with `start_at_onset`. This bench
writes each labeled clip again with N ms of quiet noise in front, and evaluates the model on each lead
with the recipe's `start_at_onset` false and true:

    python bench/leading_silence.py [--split validation|test] [--model M.keras] [--leads 0,10,25,50,100,200]

Prints core accuracy / macro-F1 (and fine accuracy) per lead and setting, and their means over the leads.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.model.bundle import ModelBundle, load_bundle  # noqa: E402
from drumcat.model.evaluate import evaluate  # noqa: E402

FLOOR_DB = -70.0
"""The noise in front, in dBFS: a quiet converter's floor. Its peaks run about 12 dB above that, so in front
of a clip peaking under -24 dBFS (a soft velocity layer) they cross the onset rule's 2% of the peak, and the
noise is then kept as part of the sound; `--below-peak` sets the level under each clip's own peak instead."""


def labeled_clips(dataset: Path, split: str) -> list[tuple[Path, str]]:
    """(clip, label) of one split of a built dataset (test.csv for the test split, as `evaluate` reads it)."""
    with open(dataset / ("test.csv" if split == "test" else "manifest.csv"), newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("split", "test") == split]
    return [(dataset / r["path"], r["label"]) for r in rows]


def with_lead(clips: list[tuple[Path, str]], lead_ms: float, folder: Path,
              below_peak: float | None) -> list[tuple[str, str]]:
    """Each clip written again with `lead_ms` of noise in front, at FLOOR_DB or `below_peak` dB under the
    clip's peak (the same noise for every lead's clip i, seeded); returns (path, label) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, (path, label) in enumerate(clips):
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
        level = FLOOR_DB if below_peak is None else 20 * np.log10(np.abs(samples).max()) - below_peak
        noise = np.random.default_rng(index).standard_normal(int(rate * lead_ms / 1000)) * 10 ** (level / 20)
        target = folder / f"{index:05d}.wav"
        sf.write(str(target), np.concatenate([noise.astype(np.float32), samples]), rate, subtype="FLOAT")
        pairs.append((str(target), label))
    return pairs


def cut_at_onset(bundle: ModelBundle, on: bool) -> ModelBundle:
    recipe = dataclasses.replace(bundle.card.features, start_at_onset=on)
    return dataclasses.replace(bundle, card=dataclasses.replace(bundle.card, features=recipe))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--model", type=Path, default=None, help="a .keras model with its card (default: shipped)")
    parser.add_argument("--leads", default="0,10,25,50,100,200", help="milliseconds of noise in front")
    parser.add_argument("--below-peak", type=float, default=None,
                        help=f"the noise this many dB under each clip's peak (default: at {FLOOR_DB:.0f} dBFS)")
    args = parser.parse_args()
    clips = labeled_clips(args.dataset, args.split)
    bundle = load_bundle(args.model) if args.model else load_bundle()
    leads = [float(x) for x in args.leads.split(",")]
    level = f"{FLOOR_DB:.0f} dBFS" if args.below_peak is None else f"{args.below_peak:g} dB under each clip's peak"
    print(f"{bundle.name} {bundle.card.version} on {len(clips)} {args.split} clips, noise at {level} in front")
    print("| lead, ms | core accuracy / macro-F1, read from the first sample | cut at the onset | fine accuracy, "
          "first sample / cut |")
    print("|---|---|---|---|")
    means: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for lead in leads:
            pairs = with_lead(clips, lead, Path(tmp) / f"{lead:g}", args.below_peak)
            cells, fine = [], []
            for on in (False, True):
                report = evaluate(cut_at_onset(bundle, on), pairs)
                core = (report["core"]["accuracy"], report["core"]["macro_f1"])
                means[on].append(core)
                cells.append(f"{core[0]:.3f} / {core[1]:.3f}")
                fine.append(f"{report['fine']['accuracy']:.3f}")
            print(f"| {lead:g} | {cells[0]} | {cells[1]} | {' / '.join(fine)} |", flush=True)
    for on in (False, True):
        accuracy, f1 = np.mean(means[on], axis=0)
        setting = "cut at the onset" if on else "from the first sample"
        print(f"mean over the leads, {setting}: {accuracy:.4f} / {f1:.4f}")


if __name__ == "__main__":
    main()

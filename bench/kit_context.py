"""Does a sound's kit help file it? A stacker with and without the kit's context, on the kit folds.

A classifier that hears one sound at a time cannot know that a drum machine's cymbal is the longest-
ringing of its metallic sounds (bench/analog_cymbals.py): that is a fact about the sound *in its kit*.
This fits, fold by fold on saved out-of-fold probabilities (`drumcat train --validation-only --kit-folds
5 --fold-probabilities RUN.npz`), three deciders of the core folder, and scores each on the fold it was
not fitted on:

  core sum   the views' rule (`core_decisions`), nothing fitted
  own        a stacker on the clip's own log core sums and acoustic summary (`acoustics`): a logistic
             regression, and gradient-boosted trees
  kit        the same plus the clip's kit context (`kit_context`): its kit's mean core sums, the clip's
             percentile rank within the kit for each core sum and acoustic number, the acoustic numbers'
             z-scores within the kit, and the kit's size. No label of a held-out kit is read.

A kit here is the manifest's kit, what a user's vendor folder would be at `infer`. `own` against `core sum`
says what stacking alone does; `kit` against `own` says what the context adds.

    python bench/kit_context.py build/runs/a/folds.npz [more.npz ...] [--dataset build/dataset]

The acoustic numbers are cached beside the dataset (kit_context_acoustics.npz). Nothing here reads the
test kits. Run 47 in docs/model-history.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.analog_cymbals import decay_and_centroid  # noqa: E402
from bench.fold_decisions import CORE, core_sum, fold_scores, line, log_core_sums  # noqa: E402
from drumcat.audio.files import decode  # noqa: E402
from drumcat.taxonomy import canonical  # noqa: E402

RATE = 22_050
WHOLE_SECONDS = 2.0  # the whole-clip centroid and level look this far
STACKERS = ("linear", "trees")
C = 1.0  # fixed in build/runs/run47/RULE.txt before any fit: no tuning on the folds


def acoustics(samples: np.ndarray) -> np.ndarray:
    """log decay time to -30 dB, centroid of the first 50 ms (kHz), centroid of the clip (kHz), log RMS."""
    decay, early = decay_and_centroid(samples)
    whole = samples[: int(WHOLE_SECONDS * RATE)]
    power = np.abs(np.fft.rfft(whole * np.hanning(whole.size))) ** 2
    freqs = np.fft.rfftfreq(whole.size, 1 / RATE)
    centroid = float((power * freqs).sum() / max(power.sum(), 1e-12))
    rms = float(np.sqrt(np.mean(np.square(whole)) + 1e-12))
    return np.array([np.log(decay), early / 1000, centroid / 1000, np.log(rms)])


def acoustics_of(dataset: Path, paths: np.ndarray) -> np.ndarray:
    cache = dataset / "kit_context_acoustics.npz"
    if cache.exists():
        kept = np.load(cache)
        if np.array_equal(kept["paths"], paths):
            return kept["acoustics"]
    values = np.stack([acoustics(decode(dataset / str(p), RATE)) for p in paths])
    np.savez_compressed(cache, paths=paths, acoustics=values)
    return values


def percentile_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's rank among its group's rows, column by column, scaled to [0, 1] (0.5 for a group of one)."""
    ranks = np.full(values.shape, 0.5)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        if rows.size > 1:
            order = values[rows].argsort(axis=0).argsort(axis=0)
            ranks[rows] = order / (rows.size - 1)
    return ranks


def kit_context(core_sums: np.ndarray, sound: np.ndarray, kits: np.ndarray) -> np.ndarray:
    """The kit's mean core sums, the clip's ranks within its kit, its acoustic z-scores there, log kit size."""
    mean_sums = np.zeros_like(core_sums)
    z = np.zeros_like(sound)
    size = np.zeros((len(kits), 1))
    for kit in np.unique(kits):
        rows = np.flatnonzero(kits == kit)
        mean_sums[rows] = core_sums[rows].mean(axis=0)
        z[rows] = (sound[rows] - sound[rows].mean(axis=0)) / (sound[rows].std(axis=0) + 1e-6)
        size[rows] = np.log(rows.size)
    ranks = percentile_within(np.hstack([core_sums, sound]), kits)
    return np.hstack([mean_sums, ranks, z, size])


def stacker(kind: str) -> Any:
    """A linear stacker (logistic regression, C fixed), or gradient-boosted trees at sklearn's defaults,
    which can express a product of features ("metallic, and the longest-ringing of its kit")."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "trees":
        return HistGradientBoostingClassifier(random_state=0)
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


def stacked(inputs: np.ndarray, truth: np.ndarray, fold: np.ndarray, kind: str) -> list[str]:
    """Each fold's core labels from a stacker fitted on the other folds."""
    predicted = np.empty(len(truth), dtype=object)
    for number in np.unique(fold):
        held, rest = fold == number, fold != number
        model = stacker(kind)
        model.fit(inputs[rest], truth[rest])
        predicted[held] = model.predict(inputs[held])
    return [str(label) for label in predicted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="--fold-probabilities files")
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    args = parser.parse_args()
    for path in args.runs:
        run = np.load(path)
        classes = [str(c) for c in run["classes"]]
        truth = np.array([canonical(str(label)) for label in run["labels"]])
        fold, kits = run["fold"], run["kits"]
        sound = acoustics_of(args.dataset, run["paths"])
        logs = log_core_sums(run["probabilities"], classes)
        own = np.hstack([logs, sound])
        with_kit = np.hstack([own, kit_context(np.exp(logs), sound, kits)])
        print(path)
        print(line("  core sum", fold_scores(truth, core_sum(run["probabilities"], classes), fold)))
        for kind in STACKERS:
            for name, inputs in (("own", own), ("kit", with_kit)):
                predicted = stacked(inputs, truth, fold, kind)
                print(line(f"  {name}, {kind}", fold_scores(truth, predicted, fold)))
    print(f"core folders: {', '.join(CORE)}")


if __name__ == "__main__":
    main()

"""Judge decision rules and ensembles on kit folds, from saved out-of-fold probabilities.

`drumcat train --validation-only --kit-folds 5 --fold-probabilities RUN.npz` keeps every training and
validation clip's probabilities from the fold model that never saw its kit. This reads one or more such
files (seeds or recipes on the same folds) and prints, fold by fold and as the mean over folds, the core
accuracy and macro-F1 of:

  fine argmax   the top fine class, mapped to its core class (the views' rule before migration 11)
  core sum      the core class whose fine classes' probabilities add up to the most (`core_decisions`,
                the views' rule since migration 11)
  ensemble      with several files, the mean of their vectors (as `drumcat model use A B` classifies)

    python bench/fold_decisions.py build/runs/a/folds.npz [build/runs/b/folds.npz ...]

Nothing here reads the test kits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.model.metrics import accuracy, macro_f1, per_class_table  # noqa: E402
from drumcat.taxonomy import CORE_CLASSES, MISC, canonical, core_decisions  # noqa: E402

CORE = [*CORE_CLASSES, MISC]


def fine_argmax(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return [canonical(classes[i]) for i in probabilities.argmax(axis=1)]


def core_sum(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return core_decisions(probabilities, classes).labels


def fold_scores(truth: list[str], predicted: list[str], fold: np.ndarray) -> list[tuple[float, float]]:
    scores = []
    for number in sorted(set(fold.tolist())):
        rows = np.flatnonzero(fold == number)
        t, p = [truth[i] for i in rows], [predicted[i] for i in rows]
        scores.append((accuracy(t, p), macro_f1(per_class_table(t, p, CORE))))
    return scores


def line(name: str, scores: list[tuple[float, float]]) -> str:
    accuracies, f1s = np.array(scores).T
    folds = " / ".join(f"{a:.3f}" for a in accuracies)
    return (f"{name:<28} core accuracy {accuracies.mean():.3f} ± {accuracies.std():.3f} ({folds}), "
            f"macro-F1 {f1s.mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="--fold-probabilities files on the same folds")
    args = parser.parse_args()
    loaded = [np.load(path) for path in args.runs]
    first = loaded[0]
    for other in loaded[1:]:  # same clips in the same folds, or the comparison means nothing
        if not (np.array_equal(other["paths"], first["paths"]) and np.array_equal(other["fold"], first["fold"])):
            sys.exit("the runs were not made on the same clips and folds")
    classes = [str(c) for c in first["classes"]]
    truth = [canonical(str(label)) for label in first["labels"]]
    runs = [(str(path), run["probabilities"]) for path, run in zip(args.runs, loaded, strict=True)]
    if len(runs) > 1:
        runs.append((f"ensemble of {len(runs)}", np.mean([p for _, p in runs], axis=0)))
    for name, probabilities in runs:
        for rule in (fine_argmax, core_sum):
            print(line(f"{name}, {rule.__name__.replace('_', ' ')}",
                       fold_scores(truth, rule(probabilities, classes), first["fold"])))


if __name__ == "__main__":
    main()

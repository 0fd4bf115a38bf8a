"""Judge decision rules and ensembles on kit folds, from saved out-of-fold probabilities.

`drumcat train --validation-only --kit-folds 5 --fold-probabilities RUN.npz` keeps every training and
validation clip's probabilities from the fold model that never saw its kit. This reads one or more such
files (seeds or recipes on the same folds) and prints, fold by fold and as the mean over folds, the core
accuracy and macro-F1 of:

  fine argmax   the top fine class, mapped to its core class (the views' rule before migration 11)
  core sum      the core class whose fine classes' probabilities add up to the most (`core_decisions`,
                the views' rule since migration 11)
  ensemble      with several files, the mean of their vectors (as `drumcat model use A B` classifies),
                and the normalized geometric mean (as one model averaging its members' logits does,
                `drumcat train --members N`), for every combination of two or more files

With --fine, the fine-34 accuracy and macro-F1 of the top fine class against the top fine class inside
the winning core folder (so a sound filed under Crash never says Hihat). With --core-bias, a per-folder
bias on the log of the core sums, fitted for macro-F1 on all folds but one and scored on that one, each
fold in turn (nested: no fold is scored by a bias fitted on it).

    python bench/fold_decisions.py build/runs/a/folds.npz [build/runs/b/folds.npz ...] [--fine] [--core-bias]

Nothing here reads the test kits.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.model.metrics import accuracy, macro_f1, per_class_table  # noqa: E402
from drumcat.taxonomy import CORE_CLASSES, MISC, canonical, core_decisions, core_membership  # noqa: E402

CORE = [*CORE_CLASSES, MISC]
BIAS_GRID = np.round(np.arange(-1.5, 1.51, 0.1), 2)  # log-space steps: exp(1.5) is a factor of 4.5


def fine_argmax(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return [canonical(classes[i]) for i in probabilities.argmax(axis=1)]


def core_sum(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return core_decisions(probabilities, classes).labels


def geometric_mean(vectors: list[np.ndarray]) -> np.ndarray:
    """Averaged log-probabilities, normalized: a softmax over averaged logits gives the same vectors."""
    logs = np.mean([np.log(np.clip(v, 1e-12, 1.0)) for v in vectors], axis=0)
    weights = np.exp(logs - logs.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def fine_top(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return [classes[i] for i in probabilities.argmax(axis=1)]


def fine_within_core(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    """The top fine class among those that map to the core folder the core sum picks."""
    membership = core_membership(classes)
    chosen = (probabilities @ membership).argmax(axis=1)
    inside = np.where(membership[:, chosen].T > 0, probabilities, -1.0)
    return [classes[i] for i in inside.argmax(axis=1)]


def log_core_sums(probabilities: np.ndarray, classes: list[str]) -> np.ndarray:
    return np.log(np.clip(probabilities @ core_membership(classes), 1e-12, 1.0))


def biased_core_labels(log_sums: np.ndarray, bias: np.ndarray) -> list[str]:
    return [CORE[i] for i in (log_sums + bias).argmax(axis=1)]


def fit_core_bias(log_sums: np.ndarray, truth: list[str], sweeps: int = 3) -> np.ndarray:
    """Coordinate search over BIAS_GRID for the per-folder bias with the best macro-F1 (ties: smaller |bias|)."""
    bias = np.zeros(len(CORE))
    for _ in range(sweeps):
        for k in range(len(CORE)):
            scored = []
            for value in BIAS_GRID:
                trial = bias.copy()
                trial[k] = value
                predicted = biased_core_labels(log_sums, trial)
                scored.append((macro_f1(per_class_table(truth, predicted, CORE)), -abs(value), value))
            bias[k] = max(scored)[2]
    return bias


def nested_core_bias(probabilities: np.ndarray, classes: list[str], truth: list[str], fold: np.ndarray
                     ) -> tuple[list[str], list[np.ndarray]]:
    """Each fold's core labels under the bias fitted on the other folds; and those biases."""
    log_sums = log_core_sums(probabilities, classes)  # once: the search scores hundreds of biases
    predicted: list[str] = [""] * len(truth)
    biases = []
    for number in sorted(set(fold.tolist())):
        held, rest = np.flatnonzero(fold == number), np.flatnonzero(fold != number)
        bias = fit_core_bias(log_sums[rest], [truth[i] for i in rest])
        biases.append(bias)
        for i, label in zip(held, biased_core_labels(log_sums[held], bias), strict=True):
            predicted[i] = label
    return predicted, biases


def fold_scores(truth: list[str], predicted: list[str], fold: np.ndarray, classes: list[str] = CORE
                ) -> list[tuple[float, float]]:
    scores = []
    for number in sorted(set(fold.tolist())):
        rows = np.flatnonzero(fold == number)
        t, p = [truth[i] for i in rows], [predicted[i] for i in rows]
        scores.append((accuracy(t, p), macro_f1(per_class_table(t, p, classes))))
    return scores


def recall_line(truth: list[str], predicted: list[str]) -> str:
    """Each core folder's recall, pooled over the folds (the out-of-fold clips together)."""
    return "  core sum recall: " + ", ".join(f"{row['class']} {row['recall']:.3f}"
                                           for row in per_class_table(truth, predicted, CORE) if row["support"])


def line(name: str, scores: list[tuple[float, float]], level: str = "core") -> str:
    accuracies, f1s = np.array(scores).T
    folds = " / ".join(f"{a:.3f}" for a in accuracies)
    return (f"{name:<28} {level} accuracy {accuracies.mean():.3f} ± {accuracies.std():.3f} ({folds}), "
            f"macro-F1 {f1s.mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="--fold-probabilities files on the same folds")
    parser.add_argument("--fine", action="store_true", help="also the fine label's two rules")
    parser.add_argument("--core-bias", action="store_true", help="also a per-folder bias, fitted fold by fold")
    parser.add_argument("--recall", action="store_true", help="also each core folder's recall (core sum, pooled)")
    args = parser.parse_args()
    loaded = [np.load(path) for path in args.runs]
    first = loaded[0]
    for other in loaded[1:]:  # same clips in the same folds, or the comparison means nothing
        if not (np.array_equal(other["paths"], first["paths"]) and np.array_equal(other["fold"], first["fold"])):
            sys.exit("the runs were not made on the same clips and folds")
    classes = [str(c) for c in first["classes"]]
    fine_truth = [str(label) for label in first["labels"]]
    truth = [canonical(label) for label in fine_truth]
    fold = first["fold"]
    runs = [(path.parent.name + "/" + path.name, run["probabilities"])
            for path, run in zip(args.runs, loaded, strict=True)]
    for size in range(2, len(runs) + 1):
        for group in itertools.combinations(runs, size):
            names = "+".join(name for name, _ in group)
            vectors = [p for _, p in group]
            runs.append((f"mean of {names}", np.mean(vectors, axis=0)))
            runs.append((f"geometric mean of {names}", geometric_mean(vectors)))
    for name, probabilities in runs:
        print(name)
        for rule in (fine_argmax, core_sum):
            print(line(f"  {rule.__name__.replace('_', ' ')}", fold_scores(truth, rule(probabilities, classes), fold)))
        if args.recall:
            print(recall_line(truth, core_sum(probabilities, classes)))
        if args.fine:
            for rule in (fine_top, fine_within_core):
                print(line(f"  fine-34, {rule.__name__.replace('_', ' ')}",
                           fold_scores(fine_truth, rule(probabilities, classes), fold, classes), "fine"))
        if args.core_bias:
            predicted, biases = nested_core_bias(probabilities, classes, truth, fold)
            print(line("  core sum + nested bias", fold_scores(truth, predicted, fold)))
            print("    biases (" + ", ".join(CORE) + "): "
                  + "; ".join(" ".join(f"{b:+.1f}" for b in bias) for bias in biases))


if __name__ == "__main__":
    main()

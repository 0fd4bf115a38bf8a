"""What the pretrained-embedding probes share (bench/probe_aisfx.py, bench/probe_musicnn.py): issue #13's
leave-kit-out linear probe. A logistic regression on a network's embeddings of every clip, fitted on the
training kits, its C chosen on the validation kits, measured once on the test kits (core accuracy and
macro-F1), and, if asked, written as out-of-kit distillation targets for `drumcat train --teacher-targets`.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Embedder = Callable[[Path, list[dict[str, str]]], np.ndarray]  # (dataset, manifest rows) -> one row per clip


def cached_embeddings(name: str, embed: Embedder, dataset: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """`embed`'s embeddings of every clip, computed once per dataset (their file is named by the manifest's
    digest)."""
    import hashlib

    digest = hashlib.sha256((dataset / "manifest.csv").read_bytes()).hexdigest()[:16]
    cache = Path("build/probe") / f"{name}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    started = time.time()
    x = embed(dataset, rows)
    print(f"embedded {x.shape[0]} clips ({x.shape[1]} dimensions) in {time.time() - started:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, x)
    return x


def out_of_kit_probabilities(x: np.ndarray, labels: np.ndarray, kits: np.ndarray, where: np.ndarray, c: float,
                             classes: list[str], folds: int = 5) -> np.ndarray:
    """Probabilities for the clips in `where`, each from a classifier fitted on the other folds' kits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    out = np.zeros((len(x), len(classes)), dtype=np.float32)
    rows = np.flatnonzero(where)
    for fit_rows, predict_rows in GroupKFold(n_splits=folds).split(rows, groups=kits[rows]):
        fit_rows, predict_rows = rows[fit_rows], rows[predict_rows]
        scaler = StandardScaler().fit(x[fit_rows])
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(
            scaler.transform(x[fit_rows]), labels[fit_rows])
        columns = [classes.index(name) for name in model.classes_]
        out[np.ix_(predict_rows, columns)] = model.predict_proba(scaler.transform(x[predict_rows]))
    return out


def write_teacher(path: Path, rows: list[dict[str, str]], x: np.ndarray, c: float, name: str) -> None:
    from drumcat.model.train.dataset import holdout_group
    from drumcat.taxonomy import FINE_CLASSES

    classes = list(FINE_CLASSES)
    labels = np.array([r["label"] for r in rows])
    split, kits = np.array([r["split"] for r in rows]), np.array([holdout_group(r["kit"]) for r in rows])
    selection = out_of_kit_probabilities(x, labels, kits, split == "train", c, classes)
    refit = out_of_kit_probabilities(x, labels, kits, (split == "train") | (split == "validation"), c, classes)
    np.savez_compressed(path, paths=np.array([r["path"] for r in rows]), classes=np.array(classes),
                        selection=selection, refit=refit, source=np.array(f"{name} linear probe, C = {c}"))
    held = (split == "train") | (split == "validation")
    agree = float(np.mean(np.array(classes)[refit[held].argmax(axis=1)] == labels[held]))
    print(f"teacher targets written to {path} (out-of-kit fine accuracy on train + validation {agree:.3f})")


def probe_arguments(description: str) -> argparse.ArgumentParser:
    """The options every probe takes; a probe adds its own before parsing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--teacher-out", type=Path, help="also write out-of-kit teacher probabilities here (.npz)")
    parser.add_argument("--kit-folds", type=int, default=0,
                        help="also score each C by grouped k-fold over the training + validation kits")
    return parser


def kit_cross_validation(x: np.ndarray, rows: list[dict[str, str]], c: float, folds: int) -> tuple[float, ...]:
    """Core accuracy (mean, spread over folds) and macro-F1 over the training and validation kits, each
    fold's kits held out of the fit: a selection figure less bound to one split than the validation kits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from drumcat.model.metrics import accuracy, macro_f1, per_class_table
    from drumcat.model.train.train import kit_folds
    from drumcat.taxonomy import CORE_CLASSES, MISC, canonical

    labels, split = np.array([r["label"] for r in rows]), np.array([r["split"] for r in rows])
    held = np.flatnonzero(split != "test")
    scores = []
    for fold in kit_folds([rows[i]["kit"] for i in held], folds):  # the CNN's folds
        fit_rows, predict_rows = np.delete(held, fold), held[fold]
        scaler = StandardScaler().fit(x[fit_rows])
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(
            scaler.transform(x[fit_rows]), labels[fit_rows])
        truth = [canonical(t) for t in labels[predict_rows]]
        predicted = [canonical(p) for p in model.predict(scaler.transform(x[predict_rows]))]
        scores.append((accuracy(truth, predicted), macro_f1(per_class_table(truth, predicted, [*CORE_CLASSES, MISC]))))
    accuracies, f1s = zip(*scores, strict=True)
    return float(np.mean(accuracies)), float(np.std(accuracies)), float(np.mean(f1s))


def linear_probe(name: str, embed: Embedder, args: argparse.Namespace) -> None:
    """Embed the dataset, choose C on the validation kits, write the teacher if asked, and read the test
    kits once."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from drumcat.model.metrics import accuracy, macro_f1, per_class_table
    from drumcat.taxonomy import CORE_CLASSES, MISC, canonical

    rows = list(csv.DictReader((args.dataset / "manifest.csv").open()))
    x = cached_embeddings(name, embed, args.dataset, rows)
    labels, split = np.array([r["label"] for r in rows]), np.array([r["split"] for r in rows])
    scaler = StandardScaler().fit(x[split == "train"])

    def fit(c: float, where: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(scaler.transform(x[where]),
                                                                                   labels[where])

    def core(model: LogisticRegression, where: np.ndarray) -> tuple[float, float]:
        truth = [canonical(t) for t in labels[where]]
        predicted = [canonical(p) for p in model.predict(scaler.transform(x[where]))]
        return accuracy(truth, predicted), macro_f1(per_class_table(truth, predicted, [*CORE_CLASSES, MISC]))

    scores, c = max((core(fit(c, split == "train"), split == "validation"), c) for c in (0.01, 0.1, 1.0))
    print(f"validation: core accuracy {scores[0]:.3f}, macro-F1 {scores[1]:.3f} with C = {c}")
    for each in (0.01, 0.1, 1.0) if args.kit_folds else ():
        mean, spread, f1 = kit_cross_validation(x, rows, each, args.kit_folds)
        print(f"{args.kit_folds}-fold over training + validation kits, C = {each}: core accuracy {mean:.3f} "
              f"± {spread:.3f}, macro-F1 {f1:.3f}")
    if args.teacher_out:
        write_teacher(args.teacher_out, rows, x, c, name)
    test = core(fit(c, (split == "train") | (split == "validation")), split == "test")
    print(f"test kits (read once): core accuracy {test[0]:.3f}, macro-F1 {test[1]:.3f}")


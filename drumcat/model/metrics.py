"""Classification metrics in plain numpy: accuracy, per-class precision/recall/F1, macro-F1,
confusion matrix and expected calibration error. Used by training (the model card) and `drumcat evaluate`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.errors import DrumcatError


def per_class_table(truth: list[str], predicted: list[str], classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support for each class that occurs in the truth or the predictions."""
    truth_arr, pred_arr = np.asarray(truth), np.asarray(predicted)
    return table_of_counts(classes, [(int((truth_arr == name).sum()), int((pred_arr == name).sum()),
                                      int(((truth_arr == name) & (pred_arr == name)).sum())) for name in classes])


def table_of_counts(classes: list[str], counts: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """`per_class_table` from each class's (support, predicted count, hits)."""
    table = []
    for name, (support, predicted_count, hits) in zip(classes, counts, strict=True):
        if support == 0 and predicted_count == 0:
            continue
        precision = hits / predicted_count if predicted_count else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table.append({"class": name, "precision": round(precision, 4), "recall": round(recall, 4),
                      "f1": round(f1, 4), "support": support})
    return table


def macro_f1(table: list[dict[str, Any]]) -> float:
    """Mean F1 over the classes present in the truth (classes only predicted do not dilute it)."""
    scores = [row["f1"] for row in table if row["support"] > 0]
    return round(float(np.mean(scores)), 4) if scores else 0.0


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return round(float(np.mean(np.asarray(truth) == np.asarray(predicted))), 4) if truth else 0.0


def kit_bootstrap_interval(
    truth: list[str], predictions: list[list[str]], kits: list[str], classes: list[str], *,
    draws: int = 2000, level: float = 0.95, seed: int = 0,
) -> dict[str, list[float]]:
    """How far core accuracy and macro-F1 could move with another draw of test kits: a percentile
    bootstrap that resamples whole kits (clips of one kit are not independent), scoring the mean over
    `predictions` (one list per seed) in each draw, as the headline figure is a mean over seeds.

    A draw's figures depend only on its confusion matrix, the sum of its kits' own (each kit counted as
    often as it was drawn): so each kit's matrix is counted once, not each draw's clips gathered again
    (25 s instead of 1 s for 10,000 files)."""
    names = [*classes, *sorted(set(truth).union(*predictions) - set(classes))]  # accuracy counts them all
    index = {name: i for i, name in enumerate(names)}
    kit_names, kit_of = np.unique(np.asarray(kits), return_inverse=True)
    per_kit = np.zeros((len(kit_names), len(predictions), len(names), len(names)))
    truth_codes = [index[name] for name in truth]
    for run, predicted in enumerate(predictions):
        np.add.at(per_kit, (kit_of, run, truth_codes, [index[name] for name in predicted]), 1)
    per_kit = per_kit.reshape(len(kit_names), -1)
    rng = np.random.default_rng(seed)
    scores = []
    for start in range(0, draws, 100):  # a block of draws at a time keeps the (draws, kits) counts small
        drawn = np.stack([np.bincount(rng.integers(0, len(kit_names), len(kit_names)), minlength=len(kit_names))
                          for _ in range(min(100, draws - start))])
        for matrices in (drawn @ per_kit).reshape(len(drawn), len(predictions), len(names), len(names)):
            scores.append(np.mean([confusion_scores(matrix, classes) for matrix in matrices], axis=0))
    low, high = np.percentile(np.array(scores), [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {"accuracy": [round(float(low[0]), 4), round(float(high[0]), 4)],
            "macro_f1": [round(float(low[1]), 4), round(float(high[1]), 4)],
            "level": level, "kits": len(kit_names), "draws": draws}


def errors_by_kit(truth: list[str], predicted: list[str], kits: list[str]) -> list[dict[str, Any]]:
    """Where a model's mistakes are: each kit's files, how many it gets wrong, its accuracy, and its most
    frequent mistake ("Crash→Hihat 21"), the kits with the most mistakes first (then by name). One kit's
    files share a maker and a microphone, so its mistakes tend to be one mistake many times."""
    rows: dict[str, dict[str, Any]] = {}
    for true, guess, kit in zip(truth, predicted, kits, strict=True):
        row = rows.setdefault(kit, {"kit": kit, "files": 0, "wrong": 0, "mistakes": Counter()})
        row["files"] += 1
        if guess != true:
            row["wrong"] += 1
            row["mistakes"][f"{true}→{guess}"] += 1
    table = []
    for row in sorted(rows.values(), key=lambda r: (-r["wrong"], r["kit"])):
        commonest = row.pop("mistakes").most_common(1)
        table.append({**row, "accuracy": round(1 - row["wrong"] / row["files"], 4),
                      "most frequent mistake": f"{commonest[0][0]} {commonest[0][1]}" if commonest else ""})
    return table


def confusion_scores(matrix: np.ndarray, classes: list[str]) -> tuple[float, float]:
    """`accuracy` and `macro_f1` over `per_class_table`, from a confusion matrix (rows: truth, columns:
    prediction) whose first rows and columns are `classes`."""
    total = float(matrix.sum())
    table = table_of_counts(classes, [(int(matrix[c].sum()), int(matrix[:, c].sum()), int(matrix[c, c]))
                                      for c in range(len(classes))])
    return (round(float(np.trace(matrix)) / total, 4) if total else 0.0), macro_f1(table)


def confusion(truth: list[str], predicted: list[str], classes: list[str]) -> list[list[int]]:
    index = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix.tolist()


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins (Guo et al., 2017)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(error), 4)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling on probabilities: softmax(log(p) / T), the same as scaling the logits."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimizing negative log-likelihood of the targets (grid search, 0.25 to 5)."""
    best, best_nll = 1.0, np.inf
    for temperature in np.round(np.arange(0.25, 5.01, 0.05), 2):
        scaled = apply_temperature(probabilities, float(temperature))
        nll = -np.mean(np.log(np.clip(scaled[np.arange(len(targets)), targets], 1e-12, 1.0)))
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def classification_report(
    truth: list[str], predicted: list[str], confidence: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    table = per_class_table(truth, predicted, classes)
    correct = np.asarray(truth) == np.asarray(predicted)
    return {
        "samples": len(truth),
        "accuracy": accuracy(truth, predicted),
        "macro_f1": macro_f1(table),
        "ece": expected_calibration_error(confidence, correct),
        "per_class": table,
    }


def calibrated(
    probabilities: np.ndarray, embedding: np.ndarray, temperature: float, model: Path
) -> tuple[np.ndarray, np.ndarray]:
    """A runtime's raw outputs as stored: temperature-calibrated probabilities (batch, labels), float32, and
    embeddings flattened to (batch, dims). A model ending in logits, not softmax, gets a softmax first."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.all(np.isfinite(probabilities)):
        raise DrumcatError(f"{model}: the model's outputs hold NaN or infinity, so it is broken: "
                           "retrain it, or export it again and re-add it with `drumcat model add`")
    if np.any(probabilities < 0) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        shifted = probabilities - probabilities.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    calibrated = apply_temperature(probabilities, temperature)
    embedding = np.asarray(embedding, dtype=np.float32).reshape(len(probabilities), -1)
    return calibrated.astype(np.float32), embedding

"""Probe: how far a linear classifier gets on aisfx's pretrained sound-effects embeddings (issue #13's
"worth a probe"), on the same whole-kit splits as the default model: fitted on the training kits, its
regularization chosen on the validation kits, measured once on the test kits (core accuracy, macro-F1).

aisfx (CC BY 4.0) ships a PyTorch checkpoint in its wheel; it is a training-time extra only, so it runs
in an environment of its own, not drumcat's:

    python3 -m venv build/probe-env
    build/probe-env/bin/pip install torch==2.13.0 aisfx librosa scikit-learn "setuptools<81"
    build/probe-env/bin/python bench/probe_aisfx.py --dataset build/dataset [--teacher-out FILE]

Measured (dataset of 6,236 clips, 2 cores): 350 s to embed; test core accuracy 0.850, macro-F1 0.806
(the CNN: 0.840 / 0.772, mean of three seeds).

`--teacher-out` also writes the probe as a distillation teacher for `drumcat train --teacher-targets`:
for every training and validation clip, probabilities over the fine classes from a classifier that
never saw that clip's kit (grouped k-fold over kits), once fitted within the training kits (for the
run that selects the epoch on validation) and once within training + validation kits (for the refit).
The test kits are never used.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def embed(dataset: Path, rows: list[dict[str, str]]) -> np.ndarray:
    import librosa
    import numpy.core.multiarray
    import torch
    from aisfx.inference import (
        EMB_BLOCK_LENGTH,
        F_MAX,
        F_MIN,
        MEL_BINS,
        SPEC_BLOCK_LENGTH,
        SPEC_HOP_LENGTH,
        load_bestModel,
        load_weights,
    )
    from aisfx.preprocessing import blocking, spectrogram_normalize

    torch.set_num_threads(2)
    allowed = [numpy.core.multiarray.scalar, np.dtype,
               *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32"))]
    with torch.serialization.safe_globals(allowed):  # the wheel's checkpoint, loaded with weights_only
        weights, datasets = load_weights("cpu")
    model = load_bestModel(weights, datasets, "cpu")

    def spectrogram(path: str) -> np.ndarray:  # aisfx's librosa recipe, one 100-frame block
        y, rate = librosa.load(str(dataset / path), sr=44_100)
        y = y / max(np.abs(y).max(), 1e-9)
        mel = librosa.feature.melspectrogram(y=y, sr=rate, n_mels=MEL_BINS, norm=1.0, fmin=F_MIN, fmax=F_MAX,
                                             htk=True, power=2.0, hop_length=SPEC_HOP_LENGTH,
                                             win_length=SPEC_BLOCK_LENGTH)
        return blocking(spectrogram_normalize(np.log10(mel * 10_000.0 + 1).T), EMB_BLOCK_LENGTH, 50, False)[0]

    out = []
    for start in range(0, len(rows), 64):
        batch = np.stack([spectrogram(r["path"]) for r in rows[start:start + 64]])
        with torch.no_grad():
            out.append(model.get_embedding(torch.Tensor(batch)).numpy())
    return np.concatenate(out)


def cached_embeddings(dataset: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """The embeddings, computed once per dataset (their file sits beside the manifest's digest)."""
    import hashlib

    digest = hashlib.sha256((dataset / "manifest.csv").read_bytes()).hexdigest()[:16]
    cache = Path("build/probe") / f"aisfx-{digest}.npy"
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


def write_teacher(path: Path, rows: list[dict[str, str]], x: np.ndarray, c: float) -> None:
    from drumcat.taxonomy import FINE_CLASSES

    classes = list(FINE_CLASSES)
    labels = np.array([r["label"] for r in rows])
    split, kits = np.array([r["split"] for r in rows]), np.array([f"{r['source']}/{r['kit']}" for r in rows])
    selection = out_of_kit_probabilities(x, labels, kits, split == "train", c, classes)
    refit = out_of_kit_probabilities(x, labels, kits, (split == "train") | (split == "validation"), c, classes)
    np.savez_compressed(path, paths=np.array([r["path"] for r in rows]), classes=np.array(classes),
                        selection=selection, refit=refit, source=np.array(f"aisfx linear probe, C = {c}"))
    held = (split == "train") | (split == "validation")
    agree = float(np.mean(np.array(classes)[refit[held].argmax(axis=1)] == labels[held]))
    print(f"teacher targets written to {path} (out-of-kit fine accuracy on train + validation {agree:.3f})")


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from drumcat.model.metrics import accuracy, macro_f1, per_class_table
    from drumcat.taxonomy import CORE_CLASSES, MISC, canonical

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--teacher-out", type=Path, help="also write out-of-kit teacher probabilities here (.npz)")
    args = parser.parse_args()
    rows = list(csv.DictReader((args.dataset / "manifest.csv").open()))
    x = cached_embeddings(args.dataset, rows)
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
    if args.teacher_out:
        write_teacher(args.teacher_out, rows, x, c)
    test = core(fit(c, (split == "train") | (split == "validation")), split == "test")
    print(f"test kits (read once): core accuracy {test[0]:.3f}, macro-F1 {test[1]:.3f}")


if __name__ == "__main__":
    main()

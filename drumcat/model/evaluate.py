"""`drumcat evaluate`: how well a model does on the user's own hand-labeled samples.

Input is a folder whose subfolders are labels (Kick/…, Snare/…) or a CSV with `path,label` columns.
Labels may be fine classes, core classes or "misc". Reports fine and core accuracy, macro-F1, a
per-class table, the confusion matrix (text, and a PNG when matplotlib is installed) and calibration.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.errors import DrumcatError, listing
from drumcat.model.bundle import ModelBundle
from drumcat.model.metrics import classification_report, confusion, errors_by_kit, kit_bootstrap_interval
from drumcat.model.pipeline import featurize
from drumcat.taxonomy import CORE_CLASSES, MISC, canonical, core_decisions, core_groups

AUDIO_EXTENSIONS = {"wav", "aif", "aiff", "flac", "ogg", "mp3"}


def read_labeled(source: Path) -> list[tuple[str, str]]:
    """(path, label) pairs from a labeled folder or a CSV file."""
    source = Path(source)
    if source.is_dir():
        pairs = [
            (str(path), path.relative_to(source).parts[0])
            for path in sorted(source.rglob("*"))
            if path.is_file() and path.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
            and len(path.relative_to(source).parts) > 1
        ]
    elif source.is_file():
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
                raise DrumcatError(f"{source}: a CSV needs a header with path and label columns")
            pairs = [(str((source.parent / row["path"]).resolve()), row["label"]) for row in reader]
    else:
        raise DrumcatError(f"{source}: no such folder or CSV file")
    if not pairs:
        raise DrumcatError(f"{source}: no labeled audio found (expected LABEL/file.wav or a path,label CSV)")
    return pairs


def read_groups(source: Path, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Each file's kit, for the interval `core_report` gives: a CSV's `kit` column, or the subfolder a file
    sits in below its label folder (Kick/VendorPack/kick1.wav: VendorPack). A file with neither is its own
    group: the files of one pack are not independent, the packs are."""
    source = Path(source)
    kits: dict[str, str] = {}
    if source.is_file():
        with source.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("kit"):
                    kits[str((source.parent / row["path"]).resolve())] = row["kit"]
    else:
        for path, _ in pairs:
            parts = Path(path).relative_to(source).parts
            if len(parts) > 2:
                kits[path] = parts[1]
    return {path: kits.get(path, path) for path, _ in pairs}


def check_labels(pairs: list[tuple[str, str]], labels: list[str], mapping: dict[str, str] | None) -> None:
    allowed = set(labels) | set(CORE_CLASSES) | set((mapping or {}).values()) | {MISC}
    unknown = sorted({label for _, label in pairs} - allowed)
    if unknown:
        raise DrumcatError(
            f"unknown label(s) {listing(unknown)}: use the model's classes, a core class or misc "
            "(rename those folders or CSV labels)"
        )


def predict_files(bundle: ModelBundle, pairs: list[tuple[str, str]],
                  on_progress: Callable[[int], None] | None = None) -> tuple[list[str], np.ndarray, list[dict]]:
    """The decodable files' paths, their calibrated probabilities (in the bundle's label order), the errors."""
    probabilities, paths, errors = [], [], []
    for start in range(0, len(pairs), 64):
        chunk = [(path, path) for path, _ in pairs[start:start + 64]]
        hashes, features, chunk_errors = featurize(chunk, bundle.card.features)
        if hashes:
            probs, _ = bundle.predict(features)
            probabilities.append(probs)
            paths.extend(hashes)  # featurize passes our first field through: here the path
        errors.extend({"path": path, "error": error} for _, path, error in chunk_errors)
        if on_progress:
            on_progress(len(chunk))
    if not paths:
        first = errors[0]
        raise DrumcatError(
            f"none of the {len(pairs)} labeled files could be decoded; the first: {first['path']}: "
            f"{first['error']} (paths in a CSV are relative to the CSV's own folder)"
        )
    return paths, np.concatenate(probabilities), errors


def report_of(name: str, labels: list[str], probs: np.ndarray, truth: list[str],
              mapping: dict[str, str] | None, groups: list[str] | None = None) -> dict[str, Any]:
    """Fine and core metrics of probabilities (rows: files, columns: `labels`) against the true labels."""
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    report: dict[str, Any] = {"model": name}
    fine_rows = [i for i, t in enumerate(truth) if t in labels]
    if fine_rows:
        fine_truth = [truth[i] for i in fine_rows]
        fine_pred = [predicted[i] for i in fine_rows]
        report["fine"] = classification_report(fine_truth, fine_pred, probs[fine_rows].max(axis=1), labels)
        present = sorted(set(fine_truth) | set(fine_pred))
        report["fine"]["confusion"] = {"classes": present, "matrix": confusion(fine_truth, fine_pred, present)}
    report["core"] = core_report([canonical(t, mapping) if t in labels else t for t in truth], probs, labels,
                                 mapping, groups)
    return report


def evaluate(
    bundle: ModelBundle, pairs: list[tuple[str, str]], *, mapping: dict[str, str] | None = None,
    groups: dict[str, str] | None = None, on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fine and core metrics of `bundle` on labeled files. `mapping` collapses fine labels to core ones
    (the catalog's canonical_map; None means the built-in mapping); `groups` (path: kit, `read_groups`)
    adds the core figures' interval over kits."""
    check_labels(pairs, bundle.card.labels, mapping)
    paths, probs, errors = predict_files(bundle, pairs, on_progress)
    truth_of = dict(pairs)
    return {**report_of(bundle.name, bundle.card.labels, probs, [truth_of[p] for p in paths], mapping,
                        [groups[p] for p in paths] if groups else None),
            "files": len(pairs), "decoded": len(paths), "errors": errors}


def evaluate_ensemble(
    bundles: list[ModelBundle], pairs: list[tuple[str, str]], *, mapping: dict[str, str] | None = None,
    groups: dict[str, str] | None = None, on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Each model and their ensemble (the mean of their calibrated vectors, class by class, as `drumcat
    model use A B` classifies) on the files every model could decode."""
    labels: list[str] = []
    for bundle in bundles:
        labels += [label for label in bundle.card.labels if label not in labels]
    check_labels(pairs, labels, mapping)
    predicted = [predict_files(b, pairs, on_progress) for b in bundles]
    common = sorted(set.intersection(*(set(paths) for paths, _, _ in predicted)))
    truth_of = dict(pairs)
    truth = [truth_of[p] for p in common]
    common_groups = [groups[p] for p in common] if groups else None
    reports, vectors = [], []
    for bundle, (paths, probs, _) in zip(bundles, predicted, strict=True):
        row = {p: i for i, p in enumerate(paths)}
        mine = probs[[row[p] for p in common]]
        reports.append(report_of(bundle.name, bundle.card.labels, mine, truth, mapping, common_groups))
        widened = np.zeros((len(common), len(labels)))
        for j, label in enumerate(bundle.card.labels):
            widened[:, labels.index(label)] = mine[:, j]
        vectors.append(widened)
    ensemble = report_of("+".join(b.name for b in bundles), labels, np.mean(vectors, axis=0), truth, mapping,
                         common_groups)
    errors = [e for _, _, errs in predicted for e in errs]
    return {"models": reports, "ensemble": ensemble, "files": len(pairs), "decoded": len(common), "errors": errors}


def core_report(
    core_truth: list[str], probabilities: np.ndarray, labels: list[str], mapping: dict[str, str] | None = None,
    groups: list[str] | None = None,
) -> dict[str, Any]:
    """Core + misc metrics of the views' decision rule (`taxonomy.core_decisions`): a sound's core class is
    the one its fine classes' probabilities add up to the most, and that sum is its confidence. With
    `groups` (each file's kit), also the 95% interval of accuracy and macro-F1 over draws of kits, and each
    kit's mistakes (`errors_by_kit`)."""
    decided = core_decisions(probabilities, labels, mapping)
    core_pred, confidence = decided.labels, decided.probabilities
    core_classes = [*CORE_CLASSES, *sorted(set(core_groups(labels, mapping)) - set(CORE_CLASSES) - {MISC}), MISC]
    report = classification_report(core_truth, core_pred, confidence, core_classes)
    report["confusion"] = {"classes": core_classes, "matrix": confusion(core_truth, core_pred, core_classes)}
    if groups:
        report["interval"] = kit_bootstrap_interval(core_truth, [core_pred], groups, core_classes)
        report["per_kit"] = errors_by_kit(core_truth, core_pred, groups)
    return report


def plot_confusion(section: dict[str, Any], title: str, path: Path) -> Path:
    """A PNG of a confusion matrix (rows: truth, columns: prediction)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DrumcatError("--plot needs matplotlib: pip install 'drumcat[plot]'") from exc
    classes, matrix = section["confusion"]["classes"], np.asarray(section["confusion"]["matrix"])
    size = max(4.0, 0.45 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), classes, rotation=90)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, column), value in np.ndenumerate(matrix):
        if value:
            axes.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > matrix.max() / 2 else "black", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

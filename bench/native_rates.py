"""What `native_rates` changes in a model's answers: every file classified twice by the model's LiteRT
export, (r) resampled to the recipe's rate as `infer` did before, and (n) at its own rate
(`FeatureRecipe.at_rate`). Per set of files: how many land in the same core folder both ways, the mean
feature difference in dB, and, for labeled files, the core accuracy both ways.

    python bench/native_rates.py [--model M.keras] [--labeled DATASET/validation.csv] \\
        [--unlabeled 'build/sources/tidal-drum-machines/machines/*/*-perc'] [--also-at 48000]

--labeled takes a path,label CSV (the validation split of a 44.1 kHz dataset build, `--split-csv` below
writes one); --unlabeled a glob of folders; --also-at repeats every set with its files resampled to
that rate first (a 48 kHz archive). The test split is never read here.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.features import FeatureRecipe  # noqa: E402
from drumcat.audio.files import decode_native, resample  # noqa: E402
from drumcat.model.bundle import ModelBundle, load_bundle  # noqa: E402
from drumcat.model.evaluate import AUDIO_EXTENSIONS, read_labeled  # noqa: E402
from drumcat.model.pipeline import featurize  # noqa: E402
from drumcat.taxonomy import canonical, core_decisions  # noqa: E402

CHUNK = 64


def classify(bundle: ModelBundle, paths: list[str], recipe: FeatureRecipe) -> tuple[list[str], np.ndarray]:
    """Each file's core folder under `recipe`, and its features."""
    folders, features = [], []
    for start in range(0, len(paths), CHUNK):
        chunk = [(path, path) for path in paths[start:start + CHUNK]]
        _, batch, errors = featurize(chunk, recipe)
        if errors:
            raise SystemExit(f"{errors[0][1]}: {errors[0][2]}: leave the file out")
        probabilities, _ = bundle.predict(batch)
        folders += core_decisions(probabilities, bundle.card.labels).labels
        features.append(batch)
    return folders, np.concatenate(features)


def compare(bundle: ModelBundle, paths: list[str], truth: list[str] | None) -> dict:
    """(r) against (n) on the files: shares, feature difference, accuracies."""
    native = dataclasses.replace(bundle.card.features, native_rates=True)
    resampled = dataclasses.replace(native, native_rates=False)
    folders_r, features_r = classify(bundle, paths, resampled)
    folders_n, features_n = classify(bundle, paths, native)
    result = {"files": len(paths),
              "same_core_folder": round(float(np.mean(np.array(folders_r) == np.array(folders_n))), 4),
              "mean_abs_db_difference": round(float(np.abs(features_n - features_r).mean()), 3),
              "mean_db_difference": round(float((features_n - features_r).mean()), 3)}
    if truth is not None:
        core_truth = np.array([canonical(label) for label in truth])
        result["core_accuracy_resampled"] = round(float(np.mean(np.array(folders_r) == core_truth)), 4)
        result["core_accuracy_native"] = round(float(np.mean(np.array(folders_n) == core_truth)), 4)
    return result


def at_rate(paths: list[str], rate: int, folder: Path) -> list[str]:
    """The files resampled to `rate` (as 32-bit float WAVs in `folder`), in their order."""
    import soundfile as sf

    copies = []
    for index, path in enumerate(paths):
        samples, source_rate = decode_native(path, 1)
        copy = folder / f"{index:05d}.wav"
        sf.write(copy, resample(samples, source_rate, rate), rate, subtype="FLOAT")
        copies.append(str(copy))
    return copies


def unlabeled_files(pattern: str) -> list[str]:
    return sorted(path for folder in glob.glob(pattern) for path in glob.glob(f"{folder}/*")
                  if Path(path).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)


def split_csv(manifest: Path, split: str, out: Path) -> Path:
    """A path,label CSV of one split of a dataset build (its manifest.csv), beside the manifest."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--labeled", type=Path, action="append", default=[])
    parser.add_argument("--unlabeled", action="append", default=[], help="a glob of folders")
    parser.add_argument("--also-at", type=int, action="append", default=[])
    parser.add_argument("--split-csv", type=Path, help="write DATASET/validation.csv from DATASET/manifest.csv")
    args = parser.parse_args()
    if args.split_csv:
        print(split_csv(args.split_csv / "manifest.csv", "validation", args.split_csv / "validation.csv"))
        return
    bundle = load_bundle(args.model)
    sets = {}
    for csv_path in args.labeled:
        pairs = read_labeled(csv_path)  # paths resolved against the CSV's folder, as `drumcat evaluate` reads them
        sets[str(csv_path)] = ([path for path, _ in pairs], [label for _, label in pairs])
    sets |= {pattern: (unlabeled_files(pattern), None) for pattern in args.unlabeled}
    report = {"model": bundle.name, "recipe": bundle.card.features.as_dict(), "sets": {}}
    for name, (paths, truth) in sets.items():
        report["sets"][name] = compare(bundle, paths, truth)
        for rate in args.also_at:
            with tempfile.TemporaryDirectory() as folder:
                report["sets"][f"{name} at {rate} Hz"] = compare(bundle, at_rate(paths, rate, Path(folder)), truth)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

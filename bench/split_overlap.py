"""Do the training set's held-out units share recordings? Near-duplicates across splits and kit folds.

The splits and the kit folds hold out whole kits (`dataset.holdout_group`), which stops a kit's own clips
from being scored by a model trained on them. It does not stop two *differently named* kits from holding
the same recording: General MIDI soundfonts are often assembled from the same sample sets, and drum
machines are sampled more than once. Such a pair makes a held-out figure optimistic. This counts them,
with drumcat's own near-duplicate fingerprints (drumcat/audio/fingerprint.py: the same take after
re-encoding, resampling, gain or trimming; other velocity layers of a drum are not matched):

    python bench/split_overlap.py [--dataset build/dataset] [--folds 5]

Prints, for the test and validation splits and for each kit fold, how many of its clips have a near-
duplicate in the data a model scored on them was trained on, by source and by core class. The
synthesized Reverse clips are left out (they are made from the same split's hits on purpose).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.files import decode  # noqa: E402
from drumcat.audio.fingerprint import MAX_DISTANCE_DB, RECIPE, fingerprints  # noqa: E402
from drumcat.audio.pair_search import close_pairs  # noqa: E402
from drumcat.model.train.train import kit_folds  # noqa: E402
from drumcat.taxonomy import canonical  # noqa: E402

LEFT_OUT_LABELS = {"Reverse"}


def read_manifest(dataset: Path) -> list[dict[str, str]]:
    with open(dataset / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def near_duplicate_pairs(dataset: Path, rows: list[dict[str, str]]) -> list[tuple[int, int, float]]:
    """Every pair of clips (row numbers) whose fingerprints are within the near-duplicate threshold."""
    kept = [i for i, row in enumerate(rows) if row["label"] not in LEFT_OUT_LABELS]
    clips = [decode(dataset / rows[i]["path"], RECIPE.sample_rate) for i in kept]
    prints = fingerprints(clips, RECIPE.sample_rate)
    lengths = np.array([len(clip) / RECIPE.sample_rate for clip in clips])
    close, _ = close_pairs(prints, lengths)
    return [(kept[a], kept[b], d) for (a, b), d in close.items()]


def shared_with_training(held: set[int], training: set[int], pairs: list[tuple[int, int, float]]) -> set[int]:
    """The held-out clips with a near-duplicate among the training clips."""
    found = set()
    for a, b, _ in pairs:
        if a in held and b in training:
            found.add(a)
        elif b in held and a in training:
            found.add(b)
    return found


def report(name: str, held: set[int], training: set[int], rows: list[dict[str, str]],
           pairs: list[tuple[int, int, float]]) -> None:
    held = {i for i in held if rows[i]["label"] not in LEFT_OUT_LABELS}
    shared = shared_with_training(held, training, pairs)
    print(f"{name:<12} {len(held):>6} clips, {len(shared):>5} ({len(shared) / max(len(held), 1):6.1%}) with a "
          f"near-duplicate in its training data")
    if shared:
        by_source = Counter(rows[i]["source"] for i in shared)
        by_class = Counter(canonical(rows[i]["label"]) for i in shared)
        print("             by source: " + ", ".join(f"{k} {v}" for k, v in by_source.most_common()))
        print("             by core class: " + ", ".join(f"{k} {v}" for k, v in by_class.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    rows = read_manifest(args.dataset)
    pairs = near_duplicate_pairs(args.dataset, rows)
    crossing = [(a, b, d) for a, b, d in pairs if rows[a]["kit"] != rows[b]["kit"]]
    counted = sum(row["label"] not in LEFT_OUT_LABELS for row in rows)
    print(f"{counted} clips (Reverse left out), {len(pairs)} near-duplicate pairs, {len(crossing)} between "
          f"two kits (threshold {MAX_DISTANCE_DB} dB)")
    kit_pairs = Counter(tuple(sorted((rows[a]["kit"], rows[b]["kit"]))) for a, b, _ in crossing)
    shown = "; ".join(f"{x} = {y}: {n}" for (x, y), n in kit_pairs.most_common(12))
    print(f"kit pairs sharing the most recordings: {shown or 'none'}")

    split = {name: {i for i, row in enumerate(rows) if row["split"] == name}
             for name in ("train", "validation", "test")}
    report("test", split["test"], split["train"] | split["validation"], rows, crossing)
    report("validation", split["validation"], split["train"], rows, crossing)

    pool = sorted(split["train"] | split["validation"])
    folds = kit_folds([rows[i]["kit"] for i in pool], args.folds)
    for number, held_rows in enumerate(folds, start=1):
        held = {pool[i] for i in held_rows}
        report(f"kit fold {number}", held, set(pool) - held, rows, crossing)


if __name__ == "__main__":
    main()

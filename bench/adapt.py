"""Adaptation benchmark: a simulated user corrects sounds of kits the model never saw, then adapts.

The held-out test kits of the training set (`make dataset`), each clip in the folder its collection keeps it
in, are scanned into a catalog and inferred with the shipped model. For N = 25, 50, 100, 200 the user
corrects the first N sounds of the review order (`review_queue`), or N sounds chosen at random, with their
true labels; `drumcat adapt` fits a model; core accuracy and macro-F1 are measured on all the other sounds
of those kits, before and after. A third user is the review page's: it corrects the first sounds of the
queue while the page learns after every 25 decisions (--round; `drumcat serve --learn-every`), so each next
25 come from the queue as the model learned so far ranks it. This user runs the page's own learner
(commands/learning.py).

    python bench/adapt.py [--dataset build/dataset] [--sizes 25,50,100,200] [--seeds 3]
                          [--split test] [--model PATH] [--round 25] [--carried]

With --carried it adapts nothing and prints, for the queue's first N corrected, the sounds a correction
carries over to (`drumcat adapt`'s close radius, in the correction's folder) and how many of them are truly
of another core class.

To choose among methods, use kits the model never saw besides the test kits: `--split validation` with a
model trained `--no-refit` (the shipped model was refit on the validation kits).

Targets (issue #15): with 100 corrections in review order, core accuracy >= 0.95 and macro-F1 >= 0.90 on
the remaining sounds, better than random choice at every N; under 2 minutes for 500 overrides.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.commands.learning import ROUND  # noqa: E402  (the page's default, after the path is set)


def origin_folder(row: dict[str, str]) -> Path:
    """Where a clip lies in the simulated user's archive: its collection's own folder for a file of a
    collection (`RolandTR808/rolandtr808-bd`, `ht`), one folder per kit for a Hydrogen kit, a soundfont,
    a voice or a synthesized kit, as a producer's library keeps them."""
    kit = row["kit"].split(":", 1)[-1]
    inside = Path(row["origin"]).parent if "/" in row["origin"] else Path(kit)
    return Path(row["source"]) / inside


def build_catalog(dataset: Path, work: Path, split: str = "test", model: Path | None = None
                  ) -> tuple[Path, dict[str, str]]:
    """A split's clips scanned and inferred in a catalog (by `model`, or the shipped one); returns it and
    hash -> true label."""
    from drumcat.commands.infer import infer
    from drumcat.commands.scan import scan
    from drumcat.config import ScanConfig
    from drumcat.model.bundle import load_bundle
    from drumcat.storage.catalog import Catalog, rows

    archive = work / f"archive-{split}"
    label_of_name = {}
    with (dataset / "manifest.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["split"] == split:
                folder = archive / origin_folder(row)
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(dataset / row["path"], folder / Path(row["path"]).name)
                label_of_name[Path(row["path"]).name] = row["label"]
    catalog = Catalog(work / f"{split}.db")
    scan(catalog, [archive], ScanConfig())
    infer(catalog, load_bundle(model))
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, path FROM unique_files")
    truth = {r["hash"]: label_of_name[Path(r["path"]).name] for r in found}
    catalog.close()
    return work / f"{split}.db", truth


def predictions(db: Path) -> dict[str, str]:
    """hash -> core folder, as the views' active model decides it (model_decisions: overrides left out)."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT hash, core_label FROM model_decisions"))


def measure(predicted: dict[str, str], held: set[str], truth: dict[str, str]) -> tuple[float, float]:
    """Core accuracy and macro-F1 of `predicted` on every sound not corrected."""
    from drumcat.model.metrics import accuracy, macro_f1, per_class_table
    from drumcat.taxonomy import CORE_CLASSES, MISC, canonical

    others = [h for h in truth if h not in held and h in predicted]
    core_truth = [canonical(truth[h]) for h in others]
    core_pred = [predicted[h] for h in others]
    return accuracy(core_truth, core_pred), macro_f1(per_class_table(core_truth, core_pred, [*CORE_CLASSES, MISC]))


def correct(db: Path, hashes: list[str], truth: dict[str, str]) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO overrides VALUES (?, ?, 'bench', '2026-01-01T00:00:00Z')",
                         [(h, truth[h]) for h in hashes])


def next_in_review_order(db: Path, count: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [h for (h,) in conn.execute("SELECT hash FROM review_queue LIMIT ?", (count,))]


def run(base_db: Path, truth: dict[str, str], work: Path, size: int, order: str, seed: int, round_size: int
        ) -> dict[str, float]:
    """One simulated user: `review` corrects the first `size` sounds of the review order and adapts once;
    `page` corrects them on the review page, which learns after every `round_size` decisions and takes the
    next ones from the re-ranked queue, its last round after the `size`th; `random` corrects `size`
    sounds drawn at random and adapts once."""
    from drumcat.commands.learning import Learner
    from drumcat.model.adapt import adapt
    from drumcat.storage.catalog import Catalog

    db = work / f"{order}-{size}-{seed}.db"
    with sqlite3.connect(base_db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    with sqlite3.connect(db) as conn:
        base_id = conn.execute("SELECT model_id FROM active_model").fetchone()[0]
    base = predictions(db)
    catalog = Catalog(db)
    learner = Learner(catalog, every=min(round_size, size)) if order == "page" else None
    chosen: list[str] = []
    seconds = 0.0
    while len(chosen) < size:
        step = min(round_size, size - len(chosen)) if order == "page" else size
        if order == "random":
            batch = list(np.random.default_rng(seed).choice(sorted(truth), size=size, replace=False))
        else:
            batch = next_in_review_order(db, step)
        correct(db, batch, truth)
        chosen += batch
        started = time.perf_counter()
        if learner is not None:
            learner.after_decision(len(batch) if len(chosen) < size else learner.every)  # the last round too
            learner.wait()
        else:
            adapt(catalog, out=work / f"{order}-{size}-{seed}.keras", base=str(base_id), use=True)
        seconds += time.perf_counter() - started
    catalog.close()
    before, after = measure(base, set(chosen), truth), measure(predictions(db), set(chosen), truth)
    return {"before_acc": before[0], "before_f1": before[1], "after_acc": after[0], "after_f1": after[1],
            "seconds": seconds}


def span(values: list[float]) -> str:
    return f"{min(values):.4f}–{max(values):.4f}" if values else "—"


def carried_over(base_db: Path, truth: dict[str, str], size: int, work: Path) -> str:
    """The targets the queue's first `size` corrections carry over to, against the truth, through adapt's
    own functions: one line of the --carried table."""
    from drumcat.model.adapt import (
        Corrections,
        carry_similarity,
        close_radius,
        close_to_overrides,
        folders_of,
        propagated,
    )
    from drumcat.storage.catalog import Catalog, rows
    from drumcat.storage.results import decode_embeddings
    from drumcat.taxonomy import canonical

    db = work / f"carried-{size}.db"
    with sqlite3.connect(base_db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    chosen = next_in_review_order(db, size)
    correct(db, chosen, truth)
    catalog = Catalog(db)
    with catalog.read() as conn:
        model = rows(conn, "SELECT id, labels FROM models WHERE id = (SELECT model_id FROM active_model)")[0]
        stored = {r["hash"]: r["embedding"] for r in rows(conn, "SELECT hash, embedding FROM predictions "
                                                                "WHERE model_id = :m", {"m": model["id"]})}
    labels = json.loads(model["labels"])
    corrections = Corrections(decode_embeddings([stored[h] for h in chosen]).astype(np.float64),
                              [truth[h] for h in chosen], folders_of(catalog, chosen))
    radius = close_radius(catalog, model["id"])
    near = close_to_overrides(catalog, model["id"], corrections, radius, len(labels), limit=len(truth))
    carried = [labels[i] for i in propagated(near, corrections, labels, radius).argmax(axis=1)]
    similarity = (carry_similarity(near.embeddings, near.folders, corrections).max(axis=1) if near.hashes
                  else np.zeros(0))
    catalog.close()
    wrong = [s for h, label, s in zip(near.hashes, carried, similarity, strict=True)
             if canonical(label) != canonical(truth[h])]
    return f"| {size} | {radius:.4f} | {len(near.hashes)} | {len(wrong)} | {span(wrong)} | {span(list(similarity))} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--seeds", type=int, default=3, help="random draws averaged for the random order")
    parser.add_argument("--split", default="test", help="whose kits the simulated user owns")
    parser.add_argument("--model", type=Path, help="the base model (default: the shipped one)")
    parser.add_argument("--round", type=int, default=ROUND, help="decisions between two rounds of the page's learning")
    parser.add_argument("--carried", action="store_true",
                        help="adapt nothing: count the carried-over targets of another core class than their sound")
    args = parser.parse_args()
    if not (args.dataset / "manifest.csv").is_file():
        raise SystemExit(f"{args.dataset}: no manifest.csv; build the training set with `make dataset`")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base_db, truth = build_catalog(args.dataset, work, args.split, args.model)
        print(f"{len(truth)} {args.split} sounds; the base model's core accuracy on all of them: "
              f"{measure(predictions(base_db), set(), truth)[0]:.3f}")
        if args.carried:
            print("| N | close radius | sounds carried over to | of another core class | their similarity | all |")
            print("|---|---|---|---|---|---|")
            for size in (int(s) for s in args.sizes.split(",")):
                print(carried_over(base_db, truth, size, work), flush=True)
            return
        print("| N | order | core accuracy before | after | macro-F1 before | after | adapt seconds |")
        print("|---|---|---|---|---|---|---|")
        for size in (int(s) for s in args.sizes.split(",")):
            for order, seeds in (("review", [0]), ("page", [0]), ("random", list(range(args.seeds)))):
                results = [run(base_db, truth, work, size, order, seed, args.round) for seed in seeds]
                mean = {k: statistics.mean(r[k] for r in results) for k in results[0]}
                name = {"review": "review, one adapt", "page": f"review page, learning every {args.round}",
                        "random": "random, one adapt"}[order]
                print(f"| {size} | {name}{f' (mean of {len(seeds)})' if len(seeds) > 1 else ''} | "
                      f"{mean['before_acc']:.3f} | {mean['after_acc']:.3f} | {mean['before_f1']:.3f} | "
                      f"{mean['after_f1']:.3f} | {mean['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""Learning-while-reviewing benchmark: how long one round of the review page's learning takes
(commands/learning.py: adapt on every override, results for every sound from the stored embeddings,
the round before retired) as the catalog grows, against re-inferring those sounds, measured in the
same run.

    python bench/learning.py [--files 1000] [--sounds 10000,50000] [--overrides 100] [--repeats 3]

`--files` synthetic one-shots (bench/archive.py) are scanned and inferred with the shipped model; the
inference rate is the reference. Their stored results are then copied, each copy's embedding moved by
a little noise, until the catalog holds each `--sounds` count, and `--overrides` of them are corrected.
Each copy is also catalogued as a file beside its original (a `files` row, no file on disk), so
that adapt's folder rule lets a correction carry over to the copies in its folder, as it would to a
producer's velocity layers.
Prints, per size, the median seconds of a round (adapt, the views switched, the model of the round
before retired) and what `drumcat infer` would take for those sounds at the rate just measured.
Target: a round at 50,000 sounds well under the time 25 decisions take (a minute or more of listening).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.archive import make_archive  # noqa: E402
from drumcat.commands.infer import infer  # noqa: E402
from drumcat.commands.learning import Learner  # noqa: E402
from drumcat.commands.scan import scan  # noqa: E402
from drumcat.config import ScanConfig  # noqa: E402
from drumcat.model.bundle import load_bundle  # noqa: E402
from drumcat.storage.catalog import Catalog, execute_many, rows  # noqa: E402
from drumcat.storage.results import decode_embeddings, end_run, start_run, write_results  # noqa: E402
from drumcat.storage.rules import write_overrides  # noqa: E402


def inferred_catalog(work: Path, files: int) -> tuple[Catalog, float]:
    """`files` one-shots scanned and inferred; returns the catalog and the inference rate (sounds/s)."""
    make_archive(work / "archive", files)
    catalog = Catalog(work / "learning.db")
    scan(catalog, [work / "archive"], ScanConfig())
    started = time.perf_counter()
    infer(catalog, load_bundle())
    return catalog, files / (time.perf_counter() - started)


def grow_to(catalog: Catalog, sounds: int, rng: np.random.Generator) -> None:
    """Copies of the inferred sounds' results (new hashes, embeddings moved by noise) up to `sounds`."""
    with catalog.read() as conn:
        model = rows(conn, "SELECT id, labels FROM models ORDER BY id LIMIT 1")[0]
        model_id, labels = model["id"], model["labels"]
        found = rows(conn, "SELECT p.hash, p.probabilities, p.embedding, f.* FROM predictions p "
                           "JOIN files f ON f.id = (SELECT min(id) FROM files WHERE hash = p.hash) "
                           "WHERE p.model_id = :m AND p.hash NOT LIKE 'copy%'", {"m": model_id})
        have = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id = ?", (model_id,)).scalar()
    embeddings = decode_embeddings([r["embedding"] for r in found])
    vectors = np.array([json.loads(r["probabilities"]) for r in found], dtype=np.float32)
    run_id, _ = start_run(catalog, model_id, sounds - have, {"bench": "copies"})
    while have < sounds:
        take = min(5000, sounds - have)
        pick = rng.integers(0, len(found), take)
        moved = embeddings[pick] * (1 + 0.05 * rng.standard_normal((take, embeddings.shape[1])))
        copies = [f"copy{have + i:09d}" for i in range(take)]
        write_results(catalog, model_id, run_id, json.loads(labels), copies, vectors[pick],
                      moved.astype(np.float32), [])
        catalog_beside_originals(catalog, copies, [found[i] for i in pick])
        have += take
    end_run(catalog, run_id, "finished")


def catalog_beside_originals(catalog: Catalog, copies: list[str], originals: list[dict]) -> None:
    """A `files` row for each copy, named after it, in its original's folder (nothing is written to disk)."""
    columns = ("root_id", "path", "rel_path", "ext", "size", "mtime", "mtime_ns", "hash", "hash_algorithm",
               "first_seen", "last_seen")
    values = []
    for digest, original in zip(copies, originals, strict=True):
        moved = {"path": os.path.join(os.path.dirname(original["path"]), f"{digest}.wav"),
                 "rel_path": os.path.join(os.path.dirname(original["rel_path"]), f"{digest}.wav"), "hash": digest}
        values.append(tuple(moved.get(column, original[column]) for column in columns))
    with catalog.connect() as conn:
        execute_many(conn, f"INSERT INTO files ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     values)


def correct_some(catalog: Catalog, count: int, rng: np.random.Generator) -> None:
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, label FROM latest_predictions WHERE hash NOT IN (SELECT hash FROM overrides)")
    chosen = rng.choice(len(found), count, replace=False)
    with catalog.connect() as conn:
        write_overrides(conn, [{"hash": found[i]["hash"], "correct_label": found[i]["label"], "note": "bench"}
                               for i in chosen])


def timed_round(learner: Learner) -> float:
    started = time.perf_counter()
    learner.after_decision(learner.every)
    learner.wait()
    if learner.error:
        raise SystemExit(f"the round failed: {learner.error}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--sounds", default="10000,50000")
    parser.add_argument("--overrides", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        catalog, rate = inferred_catalog(Path(tmp), args.files)
        correct_some(catalog, args.overrides, rng)
        print(f"drumcat infer: {rate:.0f} sounds/s on {args.files} files (the reference)")
        print(f"| sounds | one round, s (median of {args.repeats}) | sounds fitted / of them close to a correction "
              "| drumcat infer at that rate, s |")
        print("|---|---|---|---|")
        learner = Learner(catalog, every=25)
        timed_round(learner)  # the process's first: TensorFlow's import and graph building, not timed
        for size in (int(s) for s in args.sounds.split(",")):
            grow_to(catalog, size, rng)
            seconds = [timed_round(learner) for _ in range(args.repeats)]
            fitted = learner.last
            print(f"| {size:,} | {statistics.median(seconds):.1f} | {fitted.replay:,} / {fitted.carried_over:,} | "
                  f"{size / rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()

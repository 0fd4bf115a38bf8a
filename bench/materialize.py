"""Materialize benchmark: a 50,000-file catalog with synthetic predictions (rows written directly; the
files exist but are tiny), the default view materialized as symlinks, and each view's count(*) timed.

    python bench/materialize.py [--files 50000] [--repeats 3]

Targets: >= 20,000 files/s in symlink mode; every view's SELECT count(*) under 1 s. A plain os.symlink
loop making as many links, in the same run, is the reference: it shows what this machine's file system
allows today (symlink creation is all system calls, and shared machines vary by 2x between days).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.features import FeatureRecipe  # noqa: E402
from drumcat.commands.materialize import materialize  # noqa: E402
from drumcat.model.bundle import ModelCard  # noqa: E402
from drumcat.storage.catalog import Catalog, execute_many  # noqa: E402
from drumcat.storage.query import list_views  # noqa: E402
from drumcat.storage.results import register_model, set_active_model, start_run, write_results  # noqa: E402
from drumcat.taxonomy import FINE_CLASSES  # noqa: E402
from drumcat.times import utc_now  # noqa: E402


def build_catalog(workdir: Path, count: int) -> Catalog:
    archive = workdir / "archive"
    catalog = Catalog(workdir / "bench.db")
    now = utc_now()
    with catalog.connect() as conn:
        root_id = conn.exec_driver_sql("INSERT INTO roots (path, added_at) VALUES (?, ?) RETURNING id",
                                       (str(archive), now)).scalar_one()
    file_rows, audio_rows, hashes = [], [], []
    for index in range(count):
        path = archive / f"vendor{index // 500:03d}" / f"smp{index:06d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        digest = hashlib.sha256(str(index % (count - count // 20)).encode()).hexdigest()  # 5% duplicates
        hashes.append(digest)
        file_rows.append({"root_id": root_id, "path": str(path), "rel_path": path.name, "ext": "wav", "size": 1,
                          "mtime": now, "mtime_ns": 0, "hash": digest, "now": now})
        audio_rows.append({"hash": digest, "now": now})
    with catalog.connect() as conn:
        execute_many(conn, """INSERT INTO files (root_id, path, rel_path, ext, size, mtime, mtime_ns, hash,
            hash_algorithm, first_seen, last_seen) VALUES (:root_id, :path, :rel_path, :ext, :size, :mtime,
            :mtime_ns, :hash, 'sha256', :now, :now)""", file_rows)
        execute_many(conn, """INSERT OR IGNORE INTO audio (hash, format, sample_rate, channels, frames, duration,
            read_at) VALUES (:hash, 'WAV', 44100, 2, 44100, 1.0, :now)""", audio_rows)
    card = ModelCard(name="synthetic", labels=list(FINE_CLASSES), features=FeatureRecipe(), weights_sha256="-")
    model_id = register_model(catalog, card, workdir / "synthetic.keras")
    set_active_model(catalog, model_id)
    run_id, _ = start_run(catalog, model_id, count, {})
    unique = sorted(set(hashes))
    rng = np.random.default_rng(0)
    for start in range(0, len(unique), 5000):
        chunk = unique[start:start + 5000]
        probabilities = rng.dirichlet(np.full(len(FINE_CLASSES), 0.1), size=len(chunk)).astype(np.float32)
        write_results(catalog, model_id, run_id, FINE_CLASSES, chunk, probabilities,
                     np.zeros((len(chunk), 8), np.float32), [])
    return catalog


def symlink_loop(folder: Path, count: int) -> float:
    """The floor: os.symlink alone, `count` links in a new folder, no catalog, no manifests."""
    folder.mkdir()
    start = time.perf_counter()
    for index in range(count):
        os.symlink(folder.parent / f"target{index}.wav", folder / f"{index}.wav")
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        catalog = build_catalog(Path(tmp), args.files)
        print(f"catalog of {args.files} files built in {time.perf_counter() - started:.1f} s")
        rates, floor_rates = [], []
        for attempt in range(args.repeats):
            start = time.perf_counter()
            summary = materialize(catalog, "organized_default", Path(tmp) / "tree", mode="symlink")
            rates.append(summary.files / (time.perf_counter() - start))
            if attempt == 0:
                print(f"organized_default: {summary.files} files (deduplicated) in {len(summary.per_folder)} folders")
            floor_rates.append(symlink_loop(Path(tmp) / f"plain-links-{attempt}", summary.files))
        rate, floor = statistics.median(rates), statistics.median(floor_rates)
        print(f"materialize symlink      {rate:10,.0f} files/s  (median of {args.repeats}; target >= 20,000)")
        print(f"plain os.symlink loop    {floor:10,.0f} links/s  (same run; materialize is {rate / floor:.2f}x of it)")
        with catalog.read() as conn:
            for view in list_views(catalog):
                timings = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    conn.exec_driver_sql(f'SELECT count(*) FROM "{view["view"]}"').scalar()
                    timings.append(time.perf_counter() - start)
                print(f"count(*) {view['view']:<20} {statistics.median(timings) * 1000:8.1f} ms  (target < 1,000 ms)")


if __name__ == "__main__":
    main()

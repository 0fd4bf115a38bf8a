"""Similar-sound search benchmark, in one run:

  speed: a catalog of N stored embeddings (default 1,000,000, as wide as the shipped model's):
    - building the index from the catalog the first time, and updating it after 1,000 new predictions
    - one query through `EmbeddingIndex.nearest` (median of the repeats), against the floor measured on
      the same matrix in the same run: a bare `matrix @ q` plus argpartition
  quality (with --dataset, the folder `make dataset` writes): on the held-out test kits, the share of
    each sound's 5 nearest neighbours with the same core class and the same fine class

    python bench/similar.py [--embeddings 1000000] [--repeats 21] [--dataset build/dataset]

Target: a query on 1,000,000 embeddings under 100 ms (median).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.features import FeatureRecipe  # noqa: E402
from drumcat.commands.similar import EmbeddingIndex  # noqa: E402
from drumcat.model.bundle import ModelCard  # noqa: E402
from drumcat.storage.catalog import Catalog, execute_many  # noqa: E402
from drumcat.storage.results import (  # noqa: E402
    register_model,
    set_active_model,
    start_run,
    unit_rows,  # noqa: E402
)
from drumcat.taxonomy import FINE_CLASSES, canonical  # noqa: E402
from drumcat.times import utc_now  # noqa: E402


def shipped_width() -> int:
    """The shipped model's embedding width (its LiteRT export's second output)."""
    from drumcat.model.bundle import load_bundle

    return load_bundle().runtime.output_widths[1]


def add_predictions(catalog: Catalog, model_id: int, run_id: int, start: int, count: int,
                    rng: np.random.Generator, dims: int) -> None:
    """`count` predictions with random non-negative (ReLU-like) embeddings, written in batches."""
    now = utc_now()
    for first in range(start, start + count, 50_000):
        size = min(50_000, start + count - first)
        vectors = np.maximum(rng.standard_normal((size, dims)), 0).astype("<f2")
        with catalog.connect() as conn:
            execute_many(conn, """INSERT INTO predictions (model_id, hash, run_id, label, confidence, embedding,
                predicted_at, probabilities) VALUES (?, ?, ?, 'Kick', 0.9, ?, ?, '[]')""",
                         [(model_id, f"{i:064x}", run_id, vectors[i - first].tobytes(), now)
                          for i in range(first, first + size)])


def speed(embeddings: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    dims = shipped_width()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "bench.db")
        card = ModelCard(name="synthetic", labels=list(FINE_CLASSES), features=FeatureRecipe(), weights_sha256="-")
        model_id = register_model(catalog, card, Path(tmp) / "synthetic.keras")
        set_active_model(catalog, model_id)
        run_id, _ = start_run(catalog, model_id, embeddings, {})
        started = time.perf_counter()
        add_predictions(catalog, model_id, run_id, 0, embeddings, rng, dims)
        print(f"wrote {embeddings:,} predictions ({dims} dimensions) in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        index = EmbeddingIndex.for_model(catalog, model_id)
        print(f"index built from the catalog: {time.perf_counter() - started:.2f} s")
        add_predictions(catalog, model_id, run_id, embeddings, 1_000, rng, dims)
        started = time.perf_counter()
        index = EmbeddingIndex.for_model(catalog, model_id)
        print(f"index updated after 1,000 new predictions (cache read, new rows appended, saved): "
              f"{time.perf_counter() - started:.2f} s; {len(index.hashes):,} embeddings")

        queries = unit_rows(np.maximum(rng.standard_normal((repeats, dims)), 0))
        matrix = np.asarray(index.matrix)
        floor, ours = [], []
        for query in queries:
            started = time.perf_counter()
            scores = matrix @ query
            np.argpartition(-scores, 10)[:10]
            floor.append(time.perf_counter() - started)
            started = time.perf_counter()
            index.nearest(query, 10)
            ours.append(time.perf_counter() - started)
        print(f"query, k=10, median of {repeats}: nearest() {statistics.median(ours) * 1000:.1f} ms; "
              f"bare matrix product + argpartition {statistics.median(floor) * 1000:.1f} ms "
              f"(ratio {statistics.median(ours) / statistics.median(floor):.2f})")


def quality(dataset: Path) -> None:
    """Top-5 neighbour agreement on the test kits, with the shipped model's embeddings."""
    from drumcat.model.bundle import load_bundle
    from drumcat.model.pipeline import featurize

    with (dataset / "manifest.csv").open() as handle:
        test = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    bundle = load_bundle()
    items = [(row["label"], str(dataset / row["path"])) for row in test]
    embeddings = []
    for start in range(0, len(items), 256):
        _, features, _ = featurize(items[start:start + 256], bundle.card.features)
        embeddings.append(bundle.predict(features)[1])
    unit = unit_rows(np.concatenate(embeddings))
    fine = np.array([row["label"] for row in test])
    core = np.array([canonical(label) for label in fine])
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    print(f"{len(test)} test clips ({bundle.name}): top-5 neighbours with the same core class "
          f"{(core[top5] == core[:, None]).mean():.3f}, the same fine class {(fine[top5] == fine[:, None]).mean():.3f}"
          f" (chance: core {np.mean([(core == c).mean() for c in core]):.3f}, "
          f"fine {np.mean([(fine == f).mean() for f in fine]):.3f})")
    # Within a class, does a neighbour also share the sound's brightness (spectral centroid) and length?
    from drumcat.audio.files import decode

    clips = [decode(path, 22_050, max_seconds=2.0) for _, path in items]
    centroid = np.array([spectral_centroid(c) for c in clips])
    length = np.array([audible_length(c) for c in clips])
    rng = np.random.default_rng(0)
    for name, values in (("brightness (octaves between spectral centroids)", np.log2(centroid)),
                         ("length (octaves between audible lengths)", np.log2(length))):
        near, other = [], []
        for i in range(len(test)):
            same = [j for j in top5[i] if fine[j] == fine[i]]
            pool = np.flatnonzero((fine == fine[i]) & (np.arange(len(test)) != i))
            if same and pool.size:
                near += [abs(values[i] - values[j]) for j in same]
                other += [abs(values[i] - values[j]) for j in rng.choice(pool, size=min(5, pool.size))]
        print(f"  {name}: same-class neighbours differ by {np.median(near):.2f}, random same-class sounds "
              f"by {np.median(other):.2f} (medians)")


def spectral_centroid(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples[:22_050], n=32_768))
    frequencies = np.fft.rfftfreq(32_768, 1 / 22_050)
    return float((spectrum * frequencies).sum() / max(spectrum.sum(), 1e-12)) or 1.0


def audible_length(samples: np.ndarray) -> float:
    """Seconds until the sound stays 40 dB under its peak."""
    loud = np.flatnonzero(np.abs(samples) >= 0.01 * np.abs(samples).max(initial=1e-12))
    return max(float(loud[-1] + 1) / 22_050 if loud.size else 0.0, 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dataset", type=Path)
    args = parser.parse_args()
    if args.dataset:
        quality(args.dataset)
    speed(args.embeddings, args.repeats)


if __name__ == "__main__":
    main()

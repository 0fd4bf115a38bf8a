"""Review-order benchmark: the neighbour counts `drumcat infer` writes after its work, at two sizes in one run.

A catalog with N new predictions of one model (random embeddings around 40 centres, the shipped model's
width), and one with 8N; `update_review_density` counts each new sound's close neighbours in both. The
step should cost the same per sound at either size: the smaller catalog is the reference.

    python bench/review_order.py [--sounds 20000] [--repeats 3]

Prints milliseconds per 1,000 sounds (medians of the repeats) and the ratio of the larger catalog's to the
smaller's. Target: the ratio at most 1.5 (linear). Paging the uncounted sounds from the start of the table,
as before session 47, made it quadratic: 0.52 s for 20,000 sounds, 26 s for 320,000.
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the command line runs it (drumcat/cli.py)
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.features import FeatureRecipe  # noqa: E402
from drumcat.commands.review import update_review_density  # noqa: E402
from drumcat.model.bundle import ModelCard, load_bundle  # noqa: E402
from drumcat.storage.catalog import Catalog  # noqa: E402
from drumcat.storage.results import activate_if_first, register_model, start_run, write_results  # noqa: E402
from drumcat.taxonomy import FINE_CLASSES  # noqa: E402

WRITE_BATCH = 4096


def catalog_with_new_sounds(path: Path, sounds: int, width: int) -> tuple[Catalog, int]:
    """A catalog holding `sounds` predictions of one model, none of them counted yet."""
    catalog = Catalog(path, create=True)
    labels = list(FINE_CLASSES)
    card = ModelCard(name="bench", labels=labels, features=FeatureRecipe(), weights_sha256="bench")
    model_id = register_model(catalog, card, Path("/nowhere/bench.keras"))
    activate_if_first(catalog, model_id)
    run_id, _ = start_run(catalog, model_id, sounds, {})
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, width)).astype(np.float32)
    for start in range(0, sounds, WRITE_BATCH):
        count = min(WRITE_BATCH, sounds - start)
        hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(start, start + count)]
        probabilities = rng.dirichlet(np.ones(len(labels)), count).astype(np.float32)
        embeddings = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal((count, width))
        write_results(catalog, model_id, run_id, labels, hashes, probabilities, embeddings.astype(np.float32), [])
    return catalog, model_id


def ms_per_thousand(sounds: int, width: int, repeats: int, folder: Path) -> float:
    times = []
    for repeat in range(repeats):
        catalog, model_id = catalog_with_new_sounds(folder / f"{sounds}-{repeat}.db", sounds, width)
        start = time.perf_counter()
        written = update_review_density(catalog, model_id)
        times.append(time.perf_counter() - start)
        catalog.close()
        assert written == sounds, (written, sounds)
    return statistics.median(times) * 1e6 / sounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sounds", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width = load_bundle().runtime.output_widths[1]  # the shipped model's embedding
    with tempfile.TemporaryDirectory() as folder:
        small = ms_per_thousand(args.sounds, width, args.repeats, Path(folder))
        large = ms_per_thousand(8 * args.sounds, width, args.repeats, Path(folder))
    print(f"embedding width                  {width}")
    print(f"{args.sounds:>9,} new sounds            {small:8.1f} ms per 1,000")
    print(f"{8 * args.sounds:>9,} new sounds            {large:8.1f} ms per 1,000")
    print(f"ratio                            {large / small:8.2f}   (target <= 1.5: the same cost per sound)")
    print(f"medians of {args.repeats} runs")


if __name__ == "__main__":
    main()

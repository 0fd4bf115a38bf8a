"""What each training recipe's rate costs a file before the model, in one process, one thread:

  decode   read, downmix and resample to the recipe's rate (what `infer`'s workers do per file); with
           `native_rates`, a file above the recipe's rate is not resampled
  features the log-mel patch, in chunks of 64 as the workers compute them (at the file's rate where the
           recipe has native_rates)

on the benchmark archive (44.1 kHz files, bench/archive.py), and soxr's resampler alone for one 1.05 s
clip from 44.1 and 48 kHz to each rate (the decode margin included, as the pipeline reads it). The
22,050 Hz recipe is the reference measured in the same run: 44.1 -> 22.05 kHz is soxr's cheap half-band
case, so the bench archive favours that rate more than an archive of 48 kHz files would. The named
recipes (`train --recipe NAME`) are timed too, and with --model each model's own export on batches of its
input shape (the model's share of a file, which grows with the input's frames).

    python bench/recipe_cost.py [--files 1024] [--repeats 5] [--model M.keras ...]

Prints milliseconds per file (medians of the repeats) and each rate's total against the reference's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a worker's settings: one thread per process
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.archive import make_archive  # noqa: E402
from drumcat.audio.features import FeatureRecipe, features_at_rates  # noqa: E402
from drumcat.audio.files import resample  # noqa: E402
from drumcat.model.bundle import ModelBundle, load_bundle  # noqa: E402
from drumcat.model.pipeline import DECODE_MARGIN_S, decode_for  # noqa: E402
from drumcat.model.train.train import NAMED_RECIPES, RECIPE, RECIPES_BY_RATE  # noqa: E402
from drumcat.workers import CHUNK  # noqa: E402

REFERENCE_RATE = RECIPE.sample_rate  # the shipped recipe's
SOURCE_RATES = (44_100, 48_000)


def median_ms(work, count: int, repeats: int) -> float:
    """Milliseconds per item of `work()` over `count` items, median of `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / count * 1000


def pipeline_cost(paths: list[Path], recipe: FeatureRecipe, repeats: int) -> dict[str, float]:
    """ms per file for decoding (with resampling) and for features, as `infer`'s workers run them."""
    decoded = [decode_for(str(path), recipe) for path in paths]  # warm: the resampler's filter, the pages
    clips, rates = [clip for clip, _ in decoded], [rate for _, rate in decoded]
    features_at_rates(clips[:CHUNK], rates[:CHUNK], recipe)  # warm: scipy.fft's import, the filterbank

    def decode_all() -> None:
        for path in paths:
            decode_for(str(path), recipe)

    def features_all() -> None:
        for start in range(0, len(clips), CHUNK):
            features_at_rates(clips[start:start + CHUNK], rates[start:start + CHUNK], recipe)

    return {"decode": median_ms(decode_all, len(paths), repeats),
            "features": median_ms(features_all, len(paths), repeats)}


def recipes_to_time() -> dict[str, FeatureRecipe]:
    """Every training recipe by its rate, and those below the archive's 44.1 kHz also with native_rates
    (features at the file's rate, no resampling: run 37)."""
    recipes = {}
    for rate, recipe in sorted(RECIPES_BY_RATE.items()):
        recipes[f"{rate:,}"] = recipe
        if rate < 44_100:
            recipes[f"{rate:,} native"] = dataclasses.replace(recipe, native_rates=True)
    recipes.update(NAMED_RECIPES)
    return recipes


def model_cost(bundle: ModelBundle, repeats: int, batch: int = 256) -> float:
    """ms per file for the model's runtime (its LiteRT export where it has one) on a batch of inputs."""
    features = np.random.default_rng(0).normal(-40, 15, (batch, *bundle.card.input_shape)).astype(np.float32)
    bundle.predict(features)  # warm: the interpreter's buffers
    return median_ms(lambda: bundle.predict(features), batch, repeats)


def resampler_cost(source_rate: int, target_rate: int, repeats: int) -> float:
    """ms for one clip of the length the pipeline decodes, through drumcat's resampler."""
    seconds = RECIPE.total_seconds + DECODE_MARGIN_S
    clip = np.random.default_rng(0).normal(0, 0.1, int(source_rate * seconds)).astype(np.float32)
    resample(clip, source_rate, target_rate)  # the filter is designed once per rate pair
    return median_ms(lambda: [resample(clip, source_rate, target_rate) for _ in range(100)], 100, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archive", type=Path, default=Path("build/bench/archive"))
    parser.add_argument("--model", type=Path, action="append", default=[], help="also time this model")
    args = parser.parse_args()
    paths = make_archive(args.archive, args.files)
    recipes = recipes_to_time()
    costs = {name: pipeline_cost(paths, recipe, args.repeats) for name, recipe in recipes.items()}
    reference = sum(costs[f"{REFERENCE_RATE:,}"].values())
    print(f"{len(paths)} files at 44.1 kHz; ms per file, medians of {args.repeats}")
    print(f"{'recipe':>18} {'decode':>8} {'features':>9} {'total':>7}  vs {REFERENCE_RATE:,} Hz")
    for name in recipes:
        total = sum(costs[name].values())
        print(f"{name:>18} {costs[name]['decode']:8.3f} {costs[name]['features']:9.3f} {total:7.3f}  "
              f"{total / reference:.2f}x")
    rates = sorted(RECIPES_BY_RATE)
    print(f"resampler alone, ms per {RECIPE.total_seconds + DECODE_MARGIN_S:g} s clip:")
    for source in SOURCE_RATES:
        cells = "  ".join(f"-> {rate:,}: {resampler_cost(source, rate, args.repeats):.3f}" for rate in rates)
        print(f"  from {source:,} Hz  {cells}")
    for model in args.model:
        bundle = load_bundle(model)
        print(f"model {model} ({bundle.card.version}, input {bundle.card.input_shape}): "
              f"{model_cost(bundle, args.repeats):.3f} ms per file")


if __name__ == "__main__":
    main()

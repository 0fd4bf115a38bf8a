"""The per-file pipeline that worker processes run."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.errors import DrumcatError
from drumcat.model.bundle import load_bundle
from drumcat.model.pipeline import ChunkProcessor


def test_a_worker_refuses_an_export_changed_after_the_parent_checked_it(tmp_path: Path) -> None:
    bundle = load_bundle()
    export = tmp_path / "m.tflite"
    export.write_bytes(bundle.lite_path.read_bytes()[:-1] + b"\0")
    processor = ChunkProcessor(bundle.card.features, export, bundle.card.litert_sha256)
    with pytest.raises(DrumcatError, match=r"m\.tflite: sha256 .* does not match its card"):
        processor([("h", "any.wav")])


def test_the_recipe_cost_bench_times_every_recipe_rate_on_real_files(tmp_path: Path) -> None:
    """bench/recipe_cost.py decodes the files at each recipe's rate and computes their features, and times
    the resampler for each rate pair; every stage is measured. Which costs more is printed, never asserted
    (a timing is not a test)."""
    from bench.archive import make_archive
    from bench.recipe_cost import pipeline_cost, resampler_cost
    from drumcat.model.train.train import RECIPES_BY_RATE

    paths = make_archive(tmp_path / "archive", 4)
    for rate, recipe in RECIPES_BY_RATE.items():
        costs = pipeline_cost(paths, recipe, repeats=1)
        assert set(costs) == {"decode", "features"} and all(ms > 0 for ms in costs.values())
        assert resampler_cost(44_100, rate, repeats=1) > 0

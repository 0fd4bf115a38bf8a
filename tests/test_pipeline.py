"""The per-file pipeline that worker processes run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumcat.errors import DrumcatError
from drumcat.model.bundle import load_bundle
from drumcat.model.pipeline import CRASHED, ChunkProcessor, featurize
from drumcat.workers import CHUNK


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
    from bench.recipe_cost import model_cost, pipeline_cost, recipes_to_time, resampler_cost
    from drumcat.model.bundle import load_bundle
    from drumcat.model.train.train import NAMED_RECIPES, RECIPES_BY_RATE
    from drumcat.resources import default_model_path

    paths = make_archive(tmp_path / "archive", 4)
    recipes = recipes_to_time()
    assert set(recipes) == ({f"{rate:,}" for rate in RECIPES_BY_RATE} | {"22,050 native", "32,000 native"}
                            | set(NAMED_RECIPES))
    assert recipes["32,000 native"].native_rates and not recipes["32,000"].native_rates
    for recipe in recipes.values():
        costs = pipeline_cost(paths, recipe, repeats=1)
        assert set(costs) == {"decode", "features"} and all(ms > 0 for ms in costs.values())
    for rate in RECIPES_BY_RATE:
        assert resampler_cost(44_100, rate, repeats=1) > 0
    assert model_cost(load_bundle(default_model_path()), repeats=1, batch=8) > 0


def test_native_rates_feature_files_at_their_own_rate_and_resample_the_rest(tmp_path: Path) -> None:
    """With `native_rates`, a 44.1 or 48 kHz file is not resampled to the recipe's 32 kHz: its features
    are the recipe's at its rate, close to the resampled ones; a 22.05 kHz file is resampled up as
    before; a recipe with no form at a file's rate resamples that file."""
    from dataclasses import replace

    import numpy as np
    import soundfile as sf

    from drumcat.audio.features import FeatureRecipe
    from drumcat.audio.files import resample
    from drumcat.audio.synth import render
    from drumcat.model.pipeline import featurize

    items = []
    for rate in (44_100, 48_000, 22_050):
        path = tmp_path / f"snare-{rate}.wav"
        sf.write(path, resample(render("Snare", seed=7), 44_100, rate), rate, subtype="FLOAT")
        items.append((str(rate), str(path)))
    native = FeatureRecipe(sample_rate=32_000, hop_length=384, native_rates=True)
    resampled = replace(native, native_rates=False)
    hashes, features, errors = featurize(items, native)
    _, reference, _ = featurize(items, resampled)
    assert hashes == ["44100", "48000", "22050"] and not errors and features.shape == reference.shape
    for row in (0, 1):  # computed at the file's rate: not the resampled features, but near them
        assert not np.array_equal(features[row], reference[row])
        assert float(np.abs(features[row] - reference[row]).mean()) < 1.5
    np.testing.assert_array_equal(features[2], reference[2])
    no_form = FeatureRecipe(sample_rate=32_000, hop_length=100, native_rates=True)  # 137.8-sample hops
    assert no_form.at_rate(44_100) is None
    assert no_form.at_rate(48_000) is not None  # 150-sample hops
    mixed, by_resampling = featurize(items, no_form)[1], featurize(items, replace(no_form, native_rates=False))[1]
    np.testing.assert_array_equal(mixed[[0, 2]], by_resampling[[0, 2]])  # one chunk: each rate on its own path
    assert not np.array_equal(mixed[1], by_resampling[1])


def test_the_native_rates_bench_compares_both_pipelines_on_real_files(tmp_path: Path) -> None:
    """bench/native_rates.py classifies each file resampled and at its own rate with the shipped model's
    export: the same files both ways, features that differ (so both pipelines ran), shares in range."""
    import soundfile as sf

    from bench.archive import make_archive
    from bench.native_rates import at_rate, compare

    bundle = load_bundle()
    paths = [str(path) for path in make_archive(tmp_path / "archive", 6)]
    result = compare(bundle, paths, ["Kick"] * len(paths))
    assert result["files"] == 6 and 0 <= result["same_core_folder"] <= 1
    assert result["mean_abs_db_difference"] > 0
    assert 0 <= result["core_accuracy_native"] <= 1 and 0 <= result["core_accuracy_resampled"] <= 1
    upsampled = at_rate(paths[:2], 48_000, tmp_path)
    assert [sf.info(path).samplerate for path in upsampled] == [48_000, 48_000]


def _write(path: Path, samples: np.ndarray, rate: int = 44_100) -> str:
    sf.write(str(path), samples, rate, subtype="PCM_24")
    return str(path)


@pytest.mark.parametrize("lead", [1_324, 13_230])  # samples: within the read's margin, and past it (read again)
def test_a_file_is_cut_where_its_sound_starts_as_the_training_clips_were(tmp_path: Path, lead: int) -> None:
    """Quiet noise (60 dB under the peak) in front of a 1.5 s tom: with start_at_onset the model gets the
    features of the tom with the rule's 5 ms in front, a whole clip of it; from the first sample, it does not."""
    from drumcat.audio.synth import render

    tom = np.pad(render("Tom", 1), (0, 66_150))[:66_150]  # 1.5 s: longer than the clip
    noise = (np.random.default_rng(0).standard_normal(lead) * 1e-3 * np.abs(tom).max()).astype(np.float32)
    alone = _write(tmp_path / "alone.wav", np.concatenate([noise[-220:], tom]))  # 5 ms of it, as the rule keeps
    late = _write(tmp_path / "late.wav", np.concatenate([noise, tom]))
    recipe = load_bundle().card.features
    assert recipe.start_at_onset  # the shipped card says so: its training clips were cut at the onset

    _, features, _ = featurize([("a", alone), ("l", late)], recipe)
    assert np.abs(features[1] - features[0]).mean() < 0.1  # dB: the resampler's context differs at the cut
    _, uncut, _ = featurize([("a", alone), ("l", late)], dataclasses.replace(recipe, start_at_onset=False))
    assert np.abs(uncut[1] - uncut[0]).mean() > 1  # dB: the sound arrives late (and past the margin, cut short)


def test_the_dataset_cuts_its_clips_with_the_same_rule() -> None:
    from drumcat.audio.features import PRE_ROLL_SECONDS, clip_start
    from drumcat.model.train.dataset import CLIP_RATE, to_clip
    from drumcat.model.train.train import RECIPE

    samples = np.concatenate([np.zeros(1000), np.linspace(0, 1, 50), np.linspace(1, 0, 5000)]).astype(np.float32)
    start = clip_start(samples, CLIP_RATE)
    assert start == 1001 - int(PRE_ROLL_SECONDS * CLIP_RATE)  # 1,001 (1/49 of the peak) is the first above 2%
    np.testing.assert_array_equal(to_clip(samples, CLIP_RATE), samples[start:])
    assert RECIPE.start_at_onset  # so every card `drumcat train` writes cuts files the same way


def test_silent_files_are_refused_and_a_late_sound_is_found(tmp_path: Path) -> None:
    """Digital silence, and dither 90 dB down, hold nothing to classify: featurize records why instead of
    filing them (the shipped model called a silent file a hihat). A tom after 3 s of silence is read on
    to, and featured as the tom alone; after 40 s, past LATEST_ONSET_SECONDS, it is no one-shot."""
    from drumcat.audio.synth import render

    rate, tom = 44_100, render("Tom", 1)
    dither = (np.random.default_rng(0).standard_normal(rate) * 3e-5).astype(np.float32)
    files = {"zeros": np.zeros(rate, dtype=np.float32), "dither": dither,
             "tom": np.concatenate([np.zeros(220, dtype=np.float32), tom]),  # the rule's 5 ms in front
             "late": np.concatenate([np.zeros(3 * rate, dtype=np.float32), tom]),
             "too late": np.concatenate([np.zeros(40 * rate, dtype=np.float32), tom])}
    items = [(name, _write(tmp_path / f"{name}.wav", samples, rate)) for name, samples in files.items()]
    recipe = load_bundle().card.features

    hashes, features, errors = featurize(items, recipe)
    assert hashes == ["tom", "late"]
    assert np.abs(features[1] - features[0]).mean() < 0.1  # dB: cut at the same onset
    reasons = {name: error for name, _, error in errors}
    assert set(reasons) == {"zeros", "dither", "too late"}
    assert reasons["zeros"].startswith("silent: nothing above -60 dBFS in the whole file")
    assert "in its first 31 s" in reasons["too late"]

    read_from_the_start = dataclasses.replace(recipe, start_at_onset=False)
    hashes, _, errors = featurize(items, read_from_the_start)
    assert hashes == ["tom"]  # what such a model reads of the late files is their silence
    assert {error for _, _, error in errors} >= {
        "silent: nothing above -60 dBFS in the first 1 s, all the model reads; not classified, so it is in no folder"}


def test_a_recipe_lead_starts_the_clip_earlier_than_the_cut(tmp_path: Path) -> None:
    """lead_seconds: the clip starts that much before the onset cut, on the file's own samples where it
    holds them (a noise floor in front runs on unbroken) and on zeros where it does not, as a file that
    held those zeros and was read uncut; a recipe without it is written to its card as before (same hash)."""
    from drumcat.audio.features import FeatureRecipe, from_cut
    from drumcat.audio.synth import render

    recipe = dataclasses.replace(load_bundle().card.features, start_at_onset=True, lead_seconds=0.01)
    samples = np.arange(1000, dtype=np.float32)
    np.testing.assert_array_equal(from_cut(samples, 500, 22_050, recipe), samples[280:])  # 220 of its own
    np.testing.assert_array_equal(from_cut(samples, 100, 22_050, recipe), np.concatenate([np.zeros(120), samples]))

    tom = np.concatenate([np.zeros(220, dtype=np.float32), render("Tom", 1)])  # starts at its cut, as clips do
    clip = _write(tmp_path / "clip.wav", tom)
    held = _write(tmp_path / "held.wav", np.concatenate([np.zeros(441, dtype=np.float32), tom]))
    _, led, _ = featurize([("c", clip)], recipe)
    _, read_whole, _ = featurize([("h", held)], dataclasses.replace(recipe, start_at_onset=False, lead_seconds=0.0))
    assert np.abs(led - read_whole).mean() < 0.1  # dB: the resampler's context differs at the cut
    _, unled, _ = featurize([("c", clip)], dataclasses.replace(recipe, lead_seconds=0.0))
    assert np.abs(unled - read_whole).mean() > 0.5  # so the lead moved the sound by its 10 ms

    assert "lead_seconds" not in FeatureRecipe().as_dict() and recipe.as_dict()["lead_seconds"] == 0.01
    with pytest.raises(DrumcatError, match="lead_seconds"):
        FeatureRecipe(lead_seconds=-0.01).validate()


A_WORKER_DIES = """
import json, os, signal, sys
from drumcat.model.pipeline import Chunk
from drumcat.workers import CHUNK, WorkerPipeline

class DiesOn:
    '''Processes a chunk, except that its worker process dies on one path, as when a decoder in C crashes.'''
    def __init__(self, path):
        self.path = path
    def warm_up(self):
        pass
    def __call__(self, items):
        if any(path == self.path for _, path in items):
            os.kill(os.getpid(), signal.SIGKILL)
        return Chunk([digest for digest, _ in items], [])

items = [(f"h{i}", f"/archive/f{i}.wav") for i in range(3 * CHUNK + 5)]
with WorkerPipeline(items, DiesOn("/archive/f70.wav"), workers=2, crashed=Chunk.with_crashed) as chunks:
    done = [(chunk.hashes, chunk.errors) for chunk in chunks]
print(json.dumps(done))
"""


def test_a_worker_that_dies_costs_its_file_not_the_run() -> None:
    """multiprocessing.Pool waited forever for the chunks a dead worker took with it."""
    result = subprocess.run([sys.executable, "-c", A_WORKER_DIES], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert len(done) == 4  # the chunks, in order
    assert [error for _, errors in done for error in errors] == [["h70", "/archive/f70.wav", CRASHED]]
    processed = [digest for hashes, _ in done for digest in hashes]
    assert processed == [f"h{i}" for i in range(3 * CHUNK + 5) if i != 70]  # each other file once, in order

"""`drumcat infer` with the real shipped model: stored results, resume, corrupt files, bring-your-own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import librosa
import numpy as np
import pytest

from drumcat.catalog import Catalog, rows
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.features import FeatureRecipe, compute_features, mel_basis
from drumcat.infer import infer
from drumcat.metrics import apply_temperature, calibrated
from drumcat.models import ModelBundle, add_model, card_path_for, lite_path_for, load_bundle
from drumcat.pipeline import ChunkProcessor
from drumcat.resources import default_model_path
from drumcat.results import pending_sounds, register_model
from drumcat.runtime import KerasRuntime, LiteRuntime
from drumcat.scan import scan
from drumcat.synth import INSTRUMENTS, render, write_sample
from drumcat.workers import pool_context


@pytest.fixture(scope="session")
def bundle() -> ModelBundle:
    return load_bundle()


@pytest.fixture
def scanned(tmp_path: Path, catalog: Catalog) -> Path:
    root = tmp_path / "archive"
    for index, instrument in enumerate(sorted(INSTRUMENTS)):
        for take in range(3):
            ext = ["wav", "flac", "ogg", "mp3", "aiff"][(index + take) % 5]
            path = root / f"v{take}" / f"{instrument.lower()}{take}.{ext}"
            write_sample(path, render(instrument, seed=10 * index + take))
    kick = next((root / "v0").glob("kick0.*"))
    (root / f"dup{kick.suffix}").write_bytes(kick.read_bytes())
    scan(catalog, [root], ScanConfig(workers=1))
    return root


def librosa_features(path: str, recipe: FeatureRecipe) -> np.ndarray:
    """The recipe computed independently, the reference design's way: librosa.load + librosa features."""
    samples, _ = librosa.load(path, sr=recipe.sample_rate, mono=True)
    samples = librosa.util.fix_length(samples[: recipe.clip_samples], size=recipe.clip_samples)
    if recipe.peak_normalize and np.abs(samples).max() > 0:
        samples = samples / np.abs(samples).max()
    mel = librosa.feature.melspectrogram(
        y=samples, sr=recipe.sample_rate, n_fft=recipe.n_fft, hop_length=recipe.hop_length,
        n_mels=recipe.n_mels, fmin=recipe.fmin, fmax=recipe.fmax, pad_mode="constant")
    return librosa.power_to_db(mel, ref=1.0, top_db=recipe.top_db)[..., np.newaxis]


def test_predictions_equal_a_direct_model_call(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    summary = infer(catalog, bundle, batch_size=8, workers=2)
    assert summary.predicted == len(INSTRUMENTS) * 3 and summary.failed == 0  # the duplicate once
    with catalog.read() as conn:
        stored = rows(conn, """SELECT f.path, p.hash, p.label, p.confidence FROM predictions p
                               JOIN unique_files f ON f.hash = p.hash""")
        vectors = {r["hash"]: r for r in rows(conn, "SELECT hash, group_concat(probability) AS v FROM "
                                                    "(SELECT * FROM probabilities ORDER BY hash, class) GROUP BY hash")}
    assert isinstance(bundle.runtime, LiteRuntime)  # stored by LiteRT, checked against Keras itself
    recipe = bundle.card.features
    direct_inputs = np.stack([librosa_features(r["path"], recipe) for r in stored])
    keras_probabilities = bundle.keras_model.predict(direct_inputs.astype(np.float32), verbose=0)
    direct = apply_temperature(keras_probabilities.astype(np.float64), bundle.card.temperature)
    for row, expected in zip(stored, direct, strict=True):
        assert row["label"] == bundle.card.labels[int(expected.argmax())]
        assert row["confidence"] == pytest.approx(float(expected.max()), abs=2e-3)
        assert len(vectors[row["hash"]]["v"].split(",")) == len(bundle.card.labels)


def test_lite_and_keras_runtimes_give_the_same_results(scanned: Path, bundle: ModelBundle) -> None:
    paths = sorted(str(p) for p in scanned.rglob("*") if p.is_file())[:12]
    features = np.stack([librosa_features(p, bundle.card.features) for p in paths]).astype(np.float32)
    keras_bundle = load_bundle(lite=False)
    assert isinstance(keras_bundle.runtime, KerasRuntime)
    lite_probabilities, lite_embeddings = bundle.predict(features)
    keras_probabilities, keras_embeddings = keras_bundle.predict(features)
    np.testing.assert_allclose(lite_probabilities, keras_probabilities, atol=1e-4)
    np.testing.assert_allclose(lite_embeddings, keras_embeddings, rtol=1e-3, atol=1e-3)


def test_infer_with_a_keras_model_loading_in_the_background(catalog: Catalog, scanned: Path) -> None:
    bundle = load_bundle(lite=False, background=True)  # returns at once; workers start while it loads
    summary = infer(catalog, bundle, workers=2)
    assert isinstance(bundle.runtime, KerasRuntime)
    assert (summary.status, summary.predicted, summary.failed) == ("finished", len(INSTRUMENTS) * 3, 0)


def test_infer_runs_without_importing_tensorflow(tmp_path: Path, scanned: Path, catalog: Catalog) -> None:
    script = (
        "import sys\n"
        "from drumcat.catalog import Catalog\n"
        "from drumcat.infer import infer\n"
        "from drumcat.models import load_bundle\n"
        "if __name__ == '__main__':\n"
        f"    summary = infer(Catalog({str(catalog.path)!r}), load_bundle(), workers=2)\n"
        "    assert summary.predicted > 0, summary\n"
        "    print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    (tmp_path / "run.py").write_text(script)
    result = subprocess.run([sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_forked_and_spawned_workers_store_the_same_results(tmp_path: Path, scanned: Path, catalog: Catalog) -> None:
    other = Catalog(tmp_path / "other.db")
    scan(other, [scanned], ScanConfig(workers=1))
    command = [sys.executable, "-m", "drumcat.cli", "--catalog", str(other.path), "infer", "--quiet", "--workers", "2"]
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0  # forks its workers
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()  # another thread alive: this process must spawn
    try:
        assert pool_context().get_start_method() == "spawn"
        infer(catalog, load_bundle(), workers=2)
    finally:
        stop.set()
        thread.join()
    query = "SELECT hash, class, probability FROM probabilities ORDER BY hash, class"
    with catalog.read() as spawned, other.read() as forked:
        expected = spawned.exec_driver_sql(query).all()
        got = forked.exec_driver_sql(query).all()
    assert len(expected) == len(INSTRUMENTS) * 3 * 34
    assert [row[:2] for row in got] == [row[:2] for row in expected]
    # Equal to float32 rounding: where in memory an array lands can change the order of a SIMD sum.
    np.testing.assert_allclose([row[2] for row in got], [row[2] for row in expected], rtol=1e-5, atol=1e-7)


def test_a_worker_refuses_an_export_changed_after_the_parent_checked_it(tmp_path: Path) -> None:
    bundle = load_bundle()
    export = tmp_path / "m.tflite"
    export.write_bytes(bundle.lite_path.read_bytes()[:-1] + b"\0")
    processor = ChunkProcessor(bundle.card.features, export, bundle.card.litert_sha256)
    with pytest.raises(DrumcatError, match=r"m\.tflite: sha256 .* does not match its card"):
        processor([("h", "any.wav")])


def test_a_changed_lite_export_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card_path_for(model).write_text(card_path_for(default_model_path()).read_text())
    lite_path_for(model).write_bytes(lite_path_for(default_model_path()).read_bytes()[:-1] + b"\0")
    with pytest.raises(DrumcatError, match=r"m\.tflite: sha256 .* does not match its card"):
        load_bundle(model)
    assert isinstance(load_bundle(model, lite=False).runtime, KerasRuntime)


def test_duplicates_are_inferred_once_and_reruns_do_nothing(
    catalog: Catalog, scanned: Path, bundle: ModelBundle
) -> None:
    first = infer(catalog, bundle, workers=1)
    second = infer(catalog, bundle, workers=1)
    assert first.predicted == len(INSTRUMENTS) * 3
    assert (second.planned, second.predicted, second.already_done) == (0, 0, first.predicted)


def test_resume_after_an_interruption(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    partial = infer(catalog, bundle, batch_size=4, workers=1, limit=9)
    assert partial.predicted == 9
    rest = infer(catalog, bundle, batch_size=4, workers=1)
    assert rest.planned == len(INSTRUMENTS) * 3 - 9
    with catalog.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == len(INSTRUMENTS) * 3
        assert conn.exec_driver_sql("SELECT count(DISTINCT run_id) FROM predictions").scalar() == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_run_keeps_committed_batches(tmp_path: Path, scanned: Path, catalog: Catalog, workers: int) -> None:
    """A real process is killed mid-run; the rerun finishes without repeating committed work. With two
    workers the command forks them (a single-threaded process): they must not inherit its SIGTERM handler."""
    total = len(INSTRUMENTS) * 3 + 800
    for index in range(800):
        write_sample(scanned / "many" / f"h{index}.wav", render("Hihat", seed=1000 + index)[:4000])
    scan(catalog, [scanned], ScanConfig(workers=1))
    command = [sys.executable, "-m", "drumcat.cli", "--catalog", str(catalog.path), "infer", "--quiet",
               "--batch-size", "16", "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        with catalog.read() as conn:
            if conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() >= 32:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    with catalog.read() as conn:
        done = conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar()
        status = conn.exec_driver_sql("SELECT status FROM inference_runs ORDER BY id DESC").scalar()
    assert 0 < done < total and status == "interrupted"
    finish = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr
    assert json.loads(finish.stdout)["planned"] == total - done
    with catalog.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == total


def test_corrupt_file_is_recorded_and_the_run_goes_on(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    # Readable at scan time, corrupt by inference time (a disk error, a bad copy).
    victim = next((scanned / "v1").glob("snare1.*"))
    victim.write_bytes(os.urandom(3000))
    summary = infer(catalog, bundle, workers=1)
    assert summary.failed == 1 and summary.predicted == len(INSTRUMENTS) * 3 - 1
    with catalog.read() as conn:
        errors = rows(conn, "SELECT path, error FROM inference_errors")
    assert errors[0]["path"] == str(victim) and errors[0]["error"]
    assert pending_sounds(catalog, register_model(catalog, bundle)) == []  # not retried forever


def test_card_whose_labels_do_not_match_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card = json.loads(card_path_for(default_model_path()).read_text())
    card["labels"] = card["labels"][:-1]
    card_path_for(model).write_text(json.dumps(card))
    with pytest.raises(DrumcatError, match="outputs but its card lists 33 labels"):
        load_bundle(model)  # no export beside it: checked on Keras
    lite_path_for(model).write_bytes(lite_path_for(default_model_path()).read_bytes())
    with pytest.raises(DrumcatError, match=r"gives outputs \[34, 128\], but the card says .* 33 labels"):
        load_bundle(model)


def test_a_model_that_fails_to_load_in_the_background_leaves_the_catalog_untouched(
    tmp_path: Path, catalog: Catalog, scanned: Path
) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card = json.loads(card_path_for(default_model_path()).read_text())
    card["labels"] = card["labels"][:-1]
    card_path_for(model).write_text(json.dumps(card))
    pending = load_bundle(model, background=True)  # the card itself is fine: the mismatch shows on load
    with pytest.raises(DrumcatError, match="outputs but its card lists 33 labels"):
        infer(catalog, pending, workers=2)
    with catalog.read() as conn:
        assert rows(conn, "SELECT * FROM models") == []
        assert rows(conn, "SELECT * FROM inference_runs") == []
        assert rows(conn, "SELECT value FROM settings WHERE key = 'active_model'") == [{"value": None}]


def test_changed_weights_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes() + b"\0")
    card_path_for(model).write_text(card_path_for(default_model_path()).read_text())
    with pytest.raises(DrumcatError, match="does not match its card"):
        load_bundle(model)


def _tiny_model(path: Path, classes: int, with_lambda: bool) -> Path:
    import keras

    inputs = keras.Input(shape=(40, 44, 1))
    x = keras.layers.Flatten()(inputs)
    if with_lambda:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    keras.Model(inputs, outputs).save(str(path))
    return path


MFCC = FeatureRecipe(sample_rate=22_050, clip_seconds=1.0, feature_type="mfcc", n_mfcc=40, n_mels=128,
                     n_fft=2048, hop_length=512, fmin=0.0, peak_normalize=False)


def test_unsafe_model_is_refused_without_trust(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "lambda.keras", 3, with_lambda=True)
    with pytest.raises(DrumcatError, match="safe mode refuses it; pass --trust-model"):
        add_model(model, ["Kick", "Snare", "Hihat"], MFCC)
    add_model(model, ["Kick", "Snare", "Hihat"], MFCC, trust_unsafe=True)
    with pytest.raises(DrumcatError, match="unsafe"):
        load_bundle(model)
    assert load_bundle(model, trust_unsafe=True).card.labels == ["Kick", "Snare", "Hihat"]


def test_bring_your_own_mfcc_model(tmp_path: Path, catalog: Catalog, scanned: Path) -> None:
    labels_file = tmp_path / "label_mapping.json"
    labels_file.write_text(json.dumps(["Kick", "Snare", "Hihat", "Crash"]))
    model = _tiny_model(tmp_path / "model1.keras", 4, with_lambda=False)
    result = subprocess.run(
        [sys.executable, "-m", "drumcat.cli", "model", "add", str(model), "--labels", str(labels_file),
         "--feature", "mfcc", "--n-mfcc", "40"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bundle = load_bundle(model)
    assert lite_path_for(model).is_file() and isinstance(bundle.runtime, LiteRuntime)  # exported on add
    summary = infer(catalog, bundle, workers=1)
    assert summary.predicted == len(INSTRUMENTS) * 3
    with catalog.read() as conn:
        labels = {r["label"] for r in rows(conn, "SELECT label FROM latest_predictions")}
        model_rows = conn.exec_driver_sql("SELECT count(*) FROM models").scalar()
    assert labels <= {"Kick", "Snare", "Hihat", "Crash"} and model_rows == 1


def test_byo_card_with_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "m.keras", 4, with_lambda=False)
    wrong = FeatureRecipe(feature_type="mfcc", n_mfcc=20, n_fft=2048, hop_length=512)
    with pytest.raises(DrumcatError, match="expects input \\[40, 44, 1\\]"):
        add_model(model, ["Kick", "Snare", "Hihat", "Crash"], wrong)


def one_second(instrument: str, seed: int) -> np.ndarray:
    clip = librosa.resample(render(instrument, seed=seed), orig_sr=44_100, target_sr=22_050)
    return librosa.util.fix_length(clip, size=22_050).astype(np.float32)


def test_mfcc_features_equal_librosa(tmp_path: Path) -> None:
    clips = np.stack([one_second(name, seed=3) for name in ("Kick", "Snare", "Crash")])
    ours = compute_features(clips.astype(np.float32), MFCC)[..., 0]
    reference = np.stack([librosa.feature.mfcc(y=c, sr=22_050, n_mfcc=40) for c in clips.astype(np.float32)])
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def test_logmel_features_equal_librosa() -> None:
    recipe = FeatureRecipe()
    clips = np.stack([one_second(name, seed=4) for name in ("Kick", "Hihat", "Ride")])
    ours = compute_features(clips, recipe)[..., 0]
    reference = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=c, sr=22_050, n_fft=1024, hop_length=256, n_mels=64, fmin=20.0, pad_mode="constant"), top_db=80.0)
        for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


def test_logmel_of_short_and_silent_clips_equals_librosa() -> None:
    """Clips of every length in one batch, one silent: the frames past a clip's sound are skipped, not
    computed, and the result is the same."""
    recipe = FeatureRecipe()
    lengths = [22_050, 300, 0, 5_000, 17_000, 1, 9_999, 22_050, 2_000, 12_345]
    clips = np.zeros((len(lengths), recipe.clip_samples), dtype=np.float32)
    for row, length in enumerate(lengths):
        clips[row, :length] = one_second("Snare", seed=row)[:length]
    ours = compute_features(clips, recipe)[..., 0]
    reference = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=c, sr=22_050, n_fft=1024, hop_length=256, n_mels=64, fmin=20.0, pad_mode="constant"), top_db=80.0)
        for c in clips])
    np.testing.assert_allclose(ours, reference, atol=0.01)


@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (22_050, 1024, 64, 20.0, None), (16_000, 512, 40, 0.0, 8000.0), (44_100, 2048, 128, 30.0, 16_000.0)])
def test_mel_filterbank_equals_librosa(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> None:
    recipe = FeatureRecipe(sample_rate=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    reference = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(mel_basis(recipe), reference, rtol=1e-5, atol=1e-8)


def test_stats_shows_labels_after_infer(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    from drumcat.stats import catalog_stats

    infer(catalog, bundle, workers=1)
    stats = catalog_stats(catalog)
    assert sum(row["sounds"] for row in stats["labels"]) == len(INSTRUMENTS) * 3
    assert 0 < stats["confidence"]["min"] <= stats["confidence"]["median"] <= stats["confidence"]["max"] <= 1


def test_hann_window_is_scipys_periodic_hann() -> None:
    import scipy.signal

    from drumcat.features import _window

    np.testing.assert_allclose(_window(1024), scipy.signal.get_window("hann", 1024, fftbins=True), atol=1e-7)


def test_infer_runs_from_a_worker_thread(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    """The library is usable from any thread (signal handlers may only be set on the main one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        summary = pool.submit(infer, catalog, bundle, workers=1).result()
    assert summary.status == "finished" and summary.predicted == len(INSTRUMENTS) * 3


def test_a_model_that_outputs_nan_is_a_clear_error_not_a_stored_vector() -> None:
    outputs = np.array([[0.5, 0.5, 0.0], [np.nan, 0.2, 0.1]], dtype=np.float32)
    with pytest.raises(DrumcatError, match=r"broken\.keras: the model's outputs hold NaN or infinity"):
        calibrated(outputs, np.zeros((2, 4)), 1.0, Path("broken.keras"))
    finite, _ = calibrated(outputs[:1], np.zeros((1, 4)), 1.0, Path("broken.keras"))
    np.testing.assert_allclose(finite, [[0.5, 0.5, 0.0]])

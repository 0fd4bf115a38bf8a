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

import numpy as np
import pytest

from drumcat.audio.synth import INSTRUMENTS, render, write_sample
from drumcat.commands.infer import infer
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelBundle, card_path_for, lite_path_for, load_bundle
from drumcat.model.metrics import apply_temperature
from drumcat.model.runtime import KerasRuntime, LiteRuntime
from drumcat.resources import default_model_path
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import pending_sounds, register_model
from drumcat.taxonomy import FINE_CLASSES
from drumcat.workers import pool_context
from tests.helpers import EXPORT_PROBABILITY_TOLERANCE, librosa_features, tiny_model


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
    tolerance = max(2e-3, EXPORT_PROBABILITY_TOLERANCE[bundle.card.lite_weights])
    for row, expected in zip(stored, direct, strict=True):
        top, second = np.sort(expected)[::-1][:2]
        if top - second > 2 * tolerance:  # a near tie may go either way with quantized weights
            assert row["label"] == bundle.card.labels[int(expected.argmax())]
        assert row["confidence"] == pytest.approx(float(expected.max()), abs=tolerance)
        assert len(vectors[row["hash"]]["v"].split(",")) == len(bundle.card.labels)


def test_infer_with_a_keras_model_loading_in_the_background(catalog: Catalog, scanned: Path) -> None:
    bundle = load_bundle(lite=False, background=True)  # returns at once; workers start while it loads
    summary = infer(catalog, bundle, workers=2)
    assert isinstance(bundle.runtime, KerasRuntime)
    assert (summary.status, summary.predicted, summary.failed) == ("finished", len(INSTRUMENTS) * 3, 0)


def test_infer_runs_without_importing_tensorflow(tmp_path: Path, scanned: Path, catalog: Catalog) -> None:
    script = (
        "import sys\n"
        "from drumcat.storage.catalog import Catalog\n"
        "from drumcat.commands.infer import infer\n"
        "from drumcat.model.bundle import load_bundle\n"
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
    assert pending_sounds(catalog, register_model(catalog, bundle.card, bundle.path)) == []  # not retried forever


def test_a_silent_file_is_recorded_as_silent_and_goes_to_no_folder(
    tmp_path: Path, catalog: Catalog, scanned: Path, bundle: ModelBundle
) -> None:
    silent = scanned / "v0" / "placeholder.wav"
    write_sample(silent, np.zeros(22_050, dtype=np.float32))
    scan(catalog, [scanned], ScanConfig(workers=1))
    summary = infer(catalog, bundle, workers=1)
    assert summary.failed == 1 and summary.predicted == len(INSTRUMENTS) * 3
    assert summary.errors[0]["path"] == str(silent) and summary.errors[0]["error"].startswith("silent: ")
    with catalog.read() as conn:
        assert rows(conn, "SELECT path FROM inference_errors") == [{"path": str(silent)}]
        routed = rows(conn, "SELECT hash FROM routed")
    assert len(routed) == len(INSTRUMENTS) * 3  # every sound but the silent one has a folder


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
        assert rows(conn, "SELECT * FROM active_model") == []


def test_bring_your_own_mfcc_model(tmp_path: Path, catalog: Catalog, scanned: Path) -> None:
    labels_file = tmp_path / "label_mapping.json"
    labels_file.write_text(json.dumps(["Kick", "Snare", "Hihat", "Crash"]))
    model = tiny_model(tmp_path / "model1.keras", 4, with_lambda=False)
    result = subprocess.run(
        [sys.executable, "-m", "drumcat.cli", "model", "add", str(model), "--labels", str(labels_file),
         "--feature", "mfcc", "--n-mfcc", "40"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bundle = load_bundle(model)
    assert lite_path_for(model).is_file() and isinstance(bundle.runtime, LiteRuntime)  # exported on add
    assert not bundle.card.features.start_at_onset  # nobody said how its clips were cut
    summary = infer(catalog, bundle, workers=1)
    assert summary.predicted == len(INSTRUMENTS) * 3
    with catalog.read() as conn:
        labels = {r["label"] for r in rows(conn, "SELECT label FROM latest_predictions")}
        model_rows = conn.exec_driver_sql("SELECT count(*) FROM models").scalar()
    assert labels <= {"Kick", "Snare", "Hihat", "Crash"} and model_rows == 1
    again = subprocess.run(
        [sys.executable, "-m", "drumcat.cli", "model", "add", str(model), "--labels", str(labels_file),
         "--feature", "mfcc", "--n-mfcc", "40", "--start-at-onset", "--force"], capture_output=True, text=True,
        timeout=120)
    assert again.returncode == 0, again.stderr
    assert load_bundle(model).card.features.start_at_onset


def test_infer_runs_from_a_worker_thread(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    """The library is usable from any thread (signal handlers may only be set on the main one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        summary = pool.submit(infer, catalog, bundle, workers=1).result()
    assert summary.status == "finished" and summary.predicted == len(INSTRUMENTS) * 3


def test_trying_a_model_does_not_switch_the_views(catalog: Catalog, scanned: Path, bundle: ModelBundle,
                                                  tmp_path: Path) -> None:
    """The catalog's first model becomes active; a second one tried with --limit changes nothing the trees
    show until it is chosen (the trees held 3 files after `infer --model other --limit 3`)."""
    first = infer(catalog, bundle, workers=1)
    other = tmp_path / "other.keras"
    for suffix in (".keras", ".tflite"):
        other.with_suffix(suffix).write_bytes(default_model_path().with_suffix(suffix).read_bytes())
    card = json.loads(card_path_for(default_model_path()).read_text())
    card_path_for(other).write_text(json.dumps({**card, "name": "other"}))
    tried = infer(catalog, load_bundle(other), workers=1, limit=3)
    assert first.active and not tried.active
    assert infer(catalog, bundle, workers=1).active  # a rerun of the model the views use says so
    with catalog.read() as conn:
        assert rows(conn, "SELECT DISTINCT model FROM routed") == [{"model": "drumcat-v2"}]
        assert rows(conn, "SELECT count(*) AS n FROM routed") == [{"n": first.predicted}]
    infer(catalog, load_bundle(other), workers=1, use=True)
    with catalog.read() as conn:
        assert rows(conn, "SELECT DISTINCT model FROM routed") == [{"model": "other"}]


def test_an_ensemble_classifies_with_the_mean_vector(catalog: Catalog, scanned: Path) -> None:
    from drumcat.storage.results import use_models
    from tests.helpers import record_predictions

    with catalog.read() as conn:
        a, b = [r["hash"] for r in rows(conn, "SELECT hash FROM unique_files ORDER BY hash LIMIT 2")]
    one = record_predictions(catalog, {a: {"Kick": 0.6, "Tom": 0.4}, b: {"Snare": 0.9, "Clap": 0.1}}, "one")
    two = record_predictions(catalog, {a: {"Tom": 0.9, "Kick": 0.1}}, "two")
    ensemble = use_models(catalog, [one, two])
    with catalog.read() as conn:
        got = {r["hash"]: r for r in rows(conn, "SELECT * FROM latest_predictions")}
        gaps = rows(conn, "SELECT hash, members, models FROM ensemble_gaps")
        vector = json.loads(conn.exec_driver_sql("SELECT probabilities FROM predictions WHERE model_id = ? "
                                                 "AND hash = ?", (ensemble, a)).scalar())
    assert got[a]["label"] == "Tom" and got[a]["confidence"] == pytest.approx(0.65)
    assert got[a]["second_label"] == "Kick" and got[a]["second_confidence"] == pytest.approx(0.35)
    assert got[a]["model"] == "one+two"
    labels = list(FINE_CLASSES)
    assert vector[labels.index("Tom")] == pytest.approx(0.65) and sum(vector) == pytest.approx(1.0)
    assert use_models(catalog, [two, one]) == ensemble  # the same members: the same ensemble
    assert got[b]["label"] == "Snare"  # only one member has it: kept, and listed as a gap
    assert gaps == [{"hash": b, "members": 1, "models": 2}]


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("workers", -3), ("limit", -1)])
def test_nonsense_run_options_are_refused(catalog: Catalog, bundle: ModelBundle, option: str, value: int) -> None:
    with pytest.raises(DrumcatError, match=f"--{option.replace('_', '-')} {value}"):
        infer(catalog, bundle, **{option: value})

"""`drumcat adapt`: a new bundle from the overrides, cross-validated, registered, never the shipped files."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drumcat.commands.infer import infer
from drumcat.errors import DrumcatError
from drumcat.model.adapt import (
    MIN_OVERRIDES,
    Examples,
    Head,
    adapt,
    adapted_models_folder,
    base_head,
    default_out,
    fit_head,
    write_bundle_atomically,
)
from drumcat.model.bundle import ModelBundle, card_path_for, file_sha256, lite_path_for, load_bundle
from drumcat.resources import default_model_path
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import decode_embeddings
from drumcat.storage.rules import write_overrides
from tests.helpers import EXPORT_PROBABILITY_TOLERANCE, assert_embeddings_close


def test_adapt_writes_a_registered_bundle_that_classifies_the_catalog(corrected: Catalog, tmp_path: Path) -> None:
    shipped = {p: file_sha256(p) for p in (default_model_path(), lite_path_for(default_model_path()))}
    report = adapt(corrected, out=tmp_path / "mine.keras")
    adapted = load_bundle(tmp_path / "mine.keras")  # weights, export and card agree
    training = adapted.card.training
    assert training["adapted_from"]["name"] == "drumcat-v2" and sum(training["overrides_used"].values()) >= 20
    assert set(adapted.card.metrics["cross_validation"]) == {"folds", "overrides", "base", "adapted"}
    assert set(training["close_to_a_correction"]) == {"sounds", "cosine_similarity_at_least", "in_its_folder"}
    assert not report.activated
    with corrected.read() as conn:
        assert rows(conn, "SELECT DISTINCT model FROM latest_predictions") == [{"model": "drumcat-v2"}]
        stored = rows(conn, "SELECT p.hash, p.probabilities, p.embedding, u.path FROM predictions p "
                            "JOIN unique_files u ON u.hash = p.hash WHERE p.model_id = :m", {"m": report.model_id})
        total = conn.exec_driver_sql("SELECT count(*) FROM unique_files").scalar()
    assert len(stored) == total  # every sound classified, from the stored embeddings
    # The stored results are what the bundle itself computes from the audio (float16 embeddings and the
    # export's quantized weights apart: the base and the adapted export quantize the shared layers alike only
    # to within that tolerance).
    from drumcat.model.pipeline import featurize

    _, features, _ = featurize([(r["hash"], r["path"]) for r in stored[:6]], adapted.card.features)
    direct, embedding = adapted.predict(features)
    np.testing.assert_allclose(np.array([json.loads(r["probabilities"]) for r in stored[:6]]), direct,
                               atol=max(5e-3, EXPORT_PROBABILITY_TOLERANCE[adapted.card.lite_weights]))
    assert_embeddings_close(decode_embeddings([r["embedding"] for r in stored[:6]]), embedding,
                            adapted.card.lite_weights, tolerance=2e-3)
    assert {p: file_sha256(p) for p in shipped} == shipped


def test_use_switches_the_views_and_model_use_switches_back(corrected: Catalog, tmp_path: Path) -> None:
    adapt(corrected, out=tmp_path / "mine.keras", use=True)
    with corrected.read() as conn:
        assert rows(conn, "SELECT DISTINCT model FROM latest_predictions") == [{"model": "mine"}]


def test_too_few_overrides_are_refused_naming_the_minimum(catalog: Catalog, scanned: Path,
                                                          bundle: ModelBundle, tmp_path: Path) -> None:
    infer(catalog, bundle, workers=1)
    with pytest.raises(DrumcatError, match=f"at least {MIN_OVERRIDES} usable overrides, this catalog has 0"):
        adapt(catalog, out=tmp_path / "m.keras")  # none at all (was a reshape traceback)
    with catalog.read() as conn:
        hashes = [r["hash"] for r in rows(conn, "SELECT hash FROM unique_files LIMIT 5")]
    with catalog.connect() as conn:
        write_overrides(conn, [{"hash": h, "correct_label": "Kick"} for h in hashes])
    with pytest.raises(DrumcatError, match=f"at least {MIN_OVERRIDES} usable overrides, this catalog has 5"):
        adapt(catalog, out=tmp_path / "m.keras")
    assert not list(tmp_path.glob("m.*"))


def test_a_label_the_base_model_lacks_needs_allow_new_labels(corrected: Catalog, tmp_path: Path) -> None:
    with corrected.read() as conn:
        first = conn.exec_driver_sql("SELECT hash FROM overrides ORDER BY hash LIMIT 1").scalar()
        conn.exec_driver_sql("SELECT 1")
    with corrected.connect() as conn:
        conn.exec_driver_sql("INSERT INTO classes (name) VALUES ('Gong')")
        conn.exec_driver_sql("UPDATE overrides SET label = 'Gong' WHERE hash = ?", (first,))
    with pytest.raises(DrumcatError, match="'Gong' is not one of drumcat-v2's classes; pass --allow-new-labels"):
        adapt(corrected, out=tmp_path / "m.keras")
    report = adapt(corrected, out=tmp_path / "m.keras", allow_new_labels=True)
    assert report.new_labels == ["Gong"] and load_bundle(tmp_path / "m.keras").card.labels[-1] == "Gong"


def test_an_override_whose_file_is_gone_is_skipped_and_counted(corrected: Catalog, scanned: Path,
                                                               tmp_path: Path) -> None:
    with corrected.connect() as conn:  # a sound the model never saw, whose file has gone since
        conn.exec_driver_sql("INSERT INTO overrides VALUES (?, 'Kick', NULL, 'now')", ("f" * 64,))
    report = adapt(corrected, out=tmp_path / "m.keras")
    assert report.skipped == {"file missing (no present copy since the last scan)": 1}


def test_adapt_never_writes_over_the_shipped_model(corrected: Catalog) -> None:
    with pytest.raises(DrumcatError, match="would overwrite a shipped or base model"):
        adapt(corrected, out=default_model_path().with_name("other.keras"))


def test_an_interrupted_write_leaves_no_bundle(tmp_path: Path, bundle: ModelBundle) -> None:
    class Interrupted(Exception):
        pass

    class Exploding:
        def save(self, path: str) -> None:
            Path(path).write_bytes(b"half a model")
            raise Interrupted

    with pytest.raises(Interrupted):
        write_bundle_atomically(Exploding(), bundle.card, tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_a_name_taken_while_adapt_ran_is_one_line_and_the_other_models_files_are_kept(
        tmp_path: Path, bundle: ModelBundle) -> None:
    out = tmp_path / "m.keras"
    card_path_for(out).write_text("another run's card")  # written after check_out found the name free
    with pytest.raises(DrumcatError, match="another run wrote a model under this name meanwhile"):
        write_bundle_atomically(bundle.keras_model, copy.deepcopy(bundle.card), out)  # saving fills in its hashes
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"] and card_path_for(out).read_text() == "another run's card"


def test_the_default_name_skips_every_taken_one_even_when_the_base_name_looks_like_a_pattern(
        catalog: Catalog) -> None:
    folder = adapted_models_folder(catalog)
    folder.mkdir()
    (folder / "kit[1]-adapted-1.keras").write_bytes(b"")
    (folder / "kit[1]-adapted-2.tflite").write_bytes(b"")  # an export alone takes the name too
    assert default_out(catalog, "kit[1]") == folder / "kit[1]-adapted-3.keras"


def test_with_nothing_to_learn_the_head_is_the_base_model(bundle: ModelBundle) -> None:
    """The new output layer starts as the base one with its temperature folded in."""
    import keras

    base = bundle.keras_model
    rng = np.random.default_rng(0)
    embeddings = np.maximum(rng.standard_normal((4, base.get_layer("embedding").output.shape[-1])), 0)
    start = base_head(bundle, list(bundle.card.labels))
    to_probabilities = keras.Model(base.get_layer("embedding").output, base.outputs[0])
    raw = to_probabilities.predict(embeddings.astype(np.float32), verbose=0)
    from drumcat.model.metrics import apply_temperature

    np.testing.assert_allclose(start.probabilities(embeddings), apply_temperature(raw, bundle.card.temperature),
                               atol=1e-5)
    same = fit_head(start, Examples(embeddings, start.probabilities(embeddings), np.ones(4)), steps=5)
    np.testing.assert_allclose(same.weights, start.weights, atol=0.05)


def test_fit_head_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (20, 2)) + [1, 0], rng.normal(0, 0.1, (20, 2)) + [0, 1]])
    targets = np.eye(2)[[0] * 20 + [1] * 20]
    head = fit_head(Head(np.zeros((2, 2)), np.zeros(2)), Examples(x, targets, np.ones(40)), l2=0.0)
    assert (head.probabilities(x).argmax(axis=1) == targets.argmax(axis=1)).all()


def test_the_cli_prints_the_cross_validation_and_how_to_apply(corrected: Catalog, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "drumcat.cli", "--catalog", str(corrected.path), "adapt",
                             "--out", str(tmp_path / "cli.keras")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "cross-validation on the overrides" in result.stdout
    assert "close to a correction in its folder, fitted with its label" in result.stdout
    assert "apply it: drumcat model use cli" in result.stdout
    assert card_path_for(tmp_path / "cli.keras").is_file()


def test_a_correction_carries_over_to_the_close_sounds_of_its_folder(catalog: Catalog, scanned: Path,
                                                                     bundle: ModelBundle) -> None:
    """close_to_overrides finds every uncorrected sound within the radius of a correction and in its folder,
    in the whole catalog; propagated gives those the correction's label, and every other sound, close ones
    of other folders included, keeps the base vector."""
    from drumcat.model.adapt import (
        Corrections,
        close_radius,
        close_to_overrides,
        folders_of,
        propagated,
        replay_examples,
    )
    from drumcat.storage.results import unit_rows

    infer(catalog, bundle, workers=1)
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, embedding FROM predictions ORDER BY hash")
        model_id = conn.exec_driver_sql("SELECT model_id FROM embedding_model").scalar()
    corrected, others = found[0], found[1:]
    with catalog.connect() as conn:
        write_overrides(conn, [{"hash": corrected["hash"], "correct_label": "Tom", "note": "test"}])
    over = decode_embeddings([corrected["embedding"]]).astype(np.float64)
    corrections = Corrections(over, ["Tom"], folders_of(catalog, [corrected["hash"]]))
    similarity = (unit_rows(decode_embeddings([r["embedding"] for r in others])) @ unit_rows(over).T)[:, 0]
    ranked = np.sort(similarity)
    radius = float((ranked[len(ranked) // 2] + ranked[len(ranked) // 2 + 1]) / 2)  # between two sounds
    labels = list(bundle.card.labels)
    beside = [bool(folders & corrections.folders[0]) for folders in folders_of(catalog, [r["hash"] for r in others])]
    close_here = {r["hash"] for r, s, b in zip(others, similarity, beside, strict=True) if s >= radius and b}
    close_elsewhere = {r["hash"] for r, s, b in zip(others, similarity, beside, strict=True) if s >= radius and not b}
    assert close_here and close_elsewhere  # the fixture's three take folders hold both kinds

    near = close_to_overrides(catalog, model_id, corrections, radius, len(labels), limit=len(found))
    assert set(near.hashes) == close_here and corrected["hash"] not in near.hashes
    closest = close_to_overrides(catalog, model_id, corrections, radius, len(labels), limit=3)  # many copies
    nearest_here = [others[i]["hash"] for i in np.argsort(-similarity) if others[i]["hash"] in close_here][:3]
    assert set(closest.hashes) == set(nearest_here)
    everyone = replay_examples(catalog, model_id, 10_000, len(labels))
    targets = propagated(everyone, corrections, labels, radius)
    carried = np.isin(everyone.hashes, list(close_here))
    assert (targets[carried].argmax(axis=1) == labels.index("Tom")).all() and (targets[carried].max(axis=1) == 1).all()
    np.testing.assert_array_equal(targets[~carried], everyone.targets[~carried])
    assert np.isin(list(close_elsewhere), everyone.hashes).all()  # so those kept their base vectors
    assert -1.0 <= close_radius(catalog, model_id) <= 1.0

"""Learning while reviewing: a round of `drumcat adapt` after every N decisions, in the background, the views
switched to the model learned, the round before it retired; never the shipped files, never a model the user
chose elsewhere."""

from __future__ import annotations

from pathlib import Path

from drumcat.commands.learning import Learner, root_model, round_out
from drumcat.model.adapt import adapt
from drumcat.model.bundle import file_sha256, lite_path_for
from drumcat.resources import default_model_path
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import resolve_models, set_active_model, use_models
from drumcat.storage.rules import write_overrides


def active_name(catalog: Catalog) -> str:
    with catalog.read() as conn:
        return conn.exec_driver_sql("SELECT name FROM models WHERE id = (SELECT model_id FROM active_model)").scalar()


def results_of(catalog: Catalog, model_id: int) -> int:
    with catalog.read() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id = ?", (model_id,)).scalar()


def decide(learner: Learner, count: int) -> None:
    learner.after_decision(count)
    learner.wait()


def test_a_round_after_every_n_decisions_switches_the_views_and_retires_the_round_before(corrected: Catalog
                                                                                          ) -> None:
    shipped = {p: file_sha256(p) for p in (default_model_path(), lite_path_for(default_model_path()))}
    learner = Learner(corrected, every=3)
    root = learner.root
    base_results = results_of(corrected, root)
    learner.after_decision(2)
    assert not learner.running and learner.status()["state"] == "waiting"
    assert "1 more decision" in learner.status()["message"]
    decide(learner, 1)
    first = learner.status()
    assert first["state"] == "learned" and first["generation"] == 1, first
    assert active_name(corrected) == first["model"] == f"drumcat-v2-reviewed-{first['learned_from']}"
    assert round_out(corrected, "drumcat-v2", first["learned_from"]).stem == first["model"] + "-2"  # never over it
    first_id, first_path = learner.last.model_id, learner.last.out
    assert results_of(corrected, first_id) == base_results and first_path.is_file()
    assert root_model(corrected, first_id) == root  # the next round adapts the root model, not this one

    decide(learner, 3)
    assert learner.status()["generation"] == 2 and learner.last.model_id != first_id
    assert active_name(corrected) == learner.status()["model"]
    assert results_of(corrected, first_id) == 0 and not first_path.exists()
    assert not lite_path_for(first_path).exists() and not first_path.with_suffix(".json").exists()
    with corrected.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM models WHERE id = ?", (first_id,)).scalar() == 0
    assert results_of(corrected, root) == base_results  # going back to the root model is instant
    assert {p: file_sha256(p) for p in shipped} == shipped


def test_learning_pauses_for_a_model_the_user_chose_elsewhere(corrected: Catalog, tmp_path: Path) -> None:
    learner = Learner(corrected, every=1)
    mine = adapt(corrected, out=tmp_path / "mine.keras")
    set_active_model(corrected, mine.model_id)
    decide(learner, 1)
    assert learner.status()["state"] == "paused" and "mine" in learner.status()["message"]
    assert active_name(corrected) == "mine" and learner.last is None
    set_active_model(corrected, learner.root)  # back to the root model: learning goes on
    decide(learner, 1)
    assert learner.status()["state"] == "learned" and active_name(corrected) == learner.status()["model"]
    set_active_model(corrected, mine.model_id)  # chosen while a round runs (the round run here at once)
    learner._round()
    assert active_name(corrected) == "mine" and learner.status()["state"] == "paused"


def test_below_the_minimum_of_corrections_learning_waits(catalog: Catalog, scanned: Path, bundle) -> None:
    from drumcat.commands.infer import infer

    infer(catalog, bundle, workers=1)
    with catalog.read() as conn:
        some = [r["hash"] for r in rows(conn, "SELECT hash FROM unique_files ORDER BY hash LIMIT 5")]
    with catalog.connect() as conn:
        write_overrides(conn, [{"hash": h, "correct_label": "Kick", "note": "test"} for h in some])
    learner = Learner(catalog, every=1)
    decide(learner, 1)
    assert learner.last is None and learner.status()["state"] == "waiting"
    assert "15 more decisions" in learner.status()["message"]


def test_no_learning_over_an_ensemble_or_with_every_zero(corrected: Catalog, tmp_path: Path) -> None:
    assert Learner(corrected, every=0).status()["state"] == "off"
    adapt(corrected, out=tmp_path / "mine.keras")
    use_models(corrected, resolve_models(corrected, ["drumcat-v2", "mine"]))
    learner = Learner(corrected, every=1)
    decide(learner, 5)
    assert learner.status()["state"] == "off" and "ensemble" in learner.status()["message"]

"""Inference results in the catalog: models, runs, the sounds still to infer, and batches of results.

Code that needs a model row (infer, tests, benchmarks) calls `register_model`; nothing else writes the
models table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection

from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog, execute_many, rows
from drumcat.storage.core_decisions import recompute_core_decisions, write_core_decisions
from drumcat.storage.rules import set_setting
from drumcat.times import utc_now

if TYPE_CHECKING:  # a card is only described here (name, hash, labels, JSON); storage imports no model code
    from drumcat.model.bundle import ModelCard

EMBEDDING_DTYPE = "<f2"  # predictions.embedding: little-endian float16, one row of the model's embedding


def register_model(catalog: Catalog, card: ModelCard, path: Path) -> int:
    """The catalog's id for this card (the model at `path`), added the first time it is used."""
    with catalog.connect() as conn:
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO models (name, card_hash, path, labels, card, added_at) VALUES (?,?,?,?,?,?)",
            (card.name, card.card_hash(), str(path), json.dumps(card.labels), card.to_json(), utc_now()),
        )
        # A card may bring classes the catalog does not know: they map to misc until the user says otherwise.
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO classes (name) SELECT value FROM json_each(?)", (json.dumps(card.labels),))
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO canonical_map (fine, canonical) SELECT value, 'misc' FROM json_each(?)",
            (json.dumps(card.labels),))
        model_id = _model_id(conn, card)
        assert model_id is not None  # inserted just above, or there already
        return model_id


def registered_model_id(catalog: Catalog, card: ModelCard) -> int | None:
    """The catalog's id for this exact card, or None if the model never ran here (nothing is written)."""
    with catalog.read() as conn:
        return _model_id(conn, card)


def _model_id(conn: Connection, card: ModelCard) -> int | None:
    return conn.exec_driver_sql("SELECT id FROM models WHERE card_hash=?", (card.card_hash(),)).scalar()


def pending_sounds(catalog: Catalog, model_id: int | None) -> list[tuple[str, str]]:
    """(hash, path) for each present, readable sound without a result or recorded error for the model."""
    with catalog.read() as conn:
        return [
            (r["hash"], r["path"])
            for r in rows(conn, """
                SELECT u.hash, u.path FROM unique_files u
                WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.model_id = :m AND p.hash = u.hash)
                  AND NOT EXISTS (SELECT 1 FROM inference_errors e WHERE e.model_id = :m AND e.hash = u.hash)
                ORDER BY u.path""", {"m": model_id})
        ]


def write_results(
    catalog: Catalog, model_id: int, run_id: int, labels: list[str], hashes: list[str],
    probabilities: np.ndarray, embeddings: np.ndarray, errors: list[tuple],
) -> None:
    """Store one batch (top-1 and runner-up, the full probability vector, its core decision, the embedding, the
    errors) in one transaction, so a run interrupted at any point has either all of a batch or none of it."""
    now = utc_now()
    order = np.argsort(-probabilities, axis=1)
    vectors = probabilities.tolist()  # Python floats in one call: per-element float() is the slow part
    as_json = probability_vector_format(len(labels))
    prediction_rows = []
    for row, digest in enumerate(hashes):
        first, second = order[row, 0], order[row, 1] if len(labels) > 1 else None
        prediction_rows.append({
            "m": model_id, "h": digest, "r": run_id, "label": labels[first],
            "conf": vectors[row][first],
            "label2": labels[second] if second is not None else None,
            "conf2": vectors[row][second] if second is not None else None,
            "emb": embeddings[row].astype(EMBEDDING_DTYPE).tobytes(), "now": now,
            "probs": as_json % tuple(vectors[row]),
        })
    error_rows = [{"m": model_id, "h": h, "path": p, "e": e, "r": run_id, "now": now} for h, p, e in errors]
    with catalog.connect() as conn:
        execute_many(conn, """INSERT OR REPLACE INTO predictions (model_id, hash, run_id, label, confidence,
            second_label, second_confidence, embedding, predicted_at, probabilities)
            VALUES (:m, :h, :r, :label, :conf, :label2, :conf2, :emb, :now, :probs)""", prediction_rows)
        write_core_decisions(conn, model_id, labels, hashes, probabilities)
        execute_many(conn, """INSERT OR REPLACE INTO inference_errors
            VALUES (:m, :h, :path, :e, :r, :now)""", error_rows)
        conn.exec_driver_sql(
            "UPDATE inference_runs SET predicted = predicted + ?, failed = failed + ? WHERE id = ?",
            (len(hashes), len(errors), run_id),
        )


def probability_vector_format(n_labels: int) -> str:
    """A %-template that writes n probabilities as a JSON array (predictions.probabilities). %.9g keeps
    every float32 exactly, and one template is 2 to 3 times faster than json.dumps or numpy's formatting."""
    return "[" + ",".join(["%.9g"] * n_labels) + "]"


def start_run(catalog: Catalog, model_id: int, planned: int, config: dict[str, Any]) -> tuple[int, int]:
    """Record a new inference run (an earlier one still marked running was interrupted); returns the run's
    id and how many sounds the model already has results for."""
    with catalog.connect() as conn:
        conn.exec_driver_sql("UPDATE inference_runs SET status='interrupted' WHERE status='running'")
        run_id = conn.exec_driver_sql(
            "INSERT INTO inference_runs (model_id, started_at, config, planned) VALUES (?,?,?,?) RETURNING id",
            (model_id, utc_now(), json.dumps(config), planned),
        ).scalar_one()
        done = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id=?", (model_id,)).scalar_one()
    return run_id, done


def end_run(catalog: Catalog, run_id: int, status: str) -> None:
    with catalog.connect() as conn:
        conn.exec_driver_sql("UPDATE inference_runs SET status=?, finished_at=? WHERE id=?",
                             (status, utc_now(), run_id))


def set_active_model(catalog: Catalog, model_id: int) -> None:
    with catalog.connect() as conn:
        set_setting(conn, "active_model", str(model_id))


def activate_if_first(catalog: Catalog, model_id: int) -> None:
    """A catalog's first model becomes the active one; after that only the user chooses."""
    with catalog.connect() as conn:
        conn.exec_driver_sql("UPDATE settings SET value = ? WHERE key = 'active_model' AND value IS NULL",
                             (str(model_id),))


def is_active_model(catalog: Catalog, model_id: int) -> bool:
    """Whether the views classify with this model (the active_model view, migrations/0003)."""
    with catalog.read() as conn:
        return bool(conn.exec_driver_sql("SELECT EXISTS (SELECT 1 FROM active_model WHERE model_id = ?)",
                                         (model_id,)).scalar())


def use_models(catalog: Catalog, model_ids: list[int]) -> int:
    """Make the views classify with one model, or with the ensemble of several (created the first time
    and brought up to date); returns the model id the views now use."""
    chosen = model_ids[0] if len(model_ids) == 1 else ensemble_of(catalog, model_ids)
    if len(model_ids) > 1:
        refresh_ensemble(catalog, chosen)
    set_active_model(catalog, chosen)
    return chosen


def ensemble_of(catalog: Catalog, model_ids: list[int]) -> int:
    """The model row standing for the ensemble of these models (the same members give the same row)."""
    with catalog.connect() as conn:
        members = rows(conn, f"SELECT id, name, card_hash, labels FROM models WHERE id IN "
                             f"({', '.join(str(int(m)) for m in model_ids)}) ORDER BY id")
        labels: list[str] = []
        for member in members:
            labels += [label for label in json.loads(member["labels"]) if label not in labels]
        card = {"format": "drumcat-ensemble/1", "members": [m["name"] for m in members],
                "member_card_hashes": [m["card_hash"] for m in members],
                "combination": "mean of the members' calibrated probability vectors, class by class"}
        key = "ensemble:" + "+".join(m["card_hash"] for m in members)
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO models (name, card_hash, path, labels, card, added_at) VALUES (?,?,?,?,?,?)",
            ("+".join(m["name"] for m in members), key, "", json.dumps(labels), json.dumps(card), utc_now()))
        ensemble_id = conn.exec_driver_sql("SELECT id FROM models WHERE card_hash = ?", (key,)).scalar_one()
        execute_many(conn, "INSERT OR IGNORE INTO ensemble_members VALUES (?, ?)",
                     [(ensemble_id, m["id"]) for m in members])
    return ensemble_id


def refresh_ensemble(catalog: Catalog, ensemble_id: int) -> int:
    """(Re)compute an ensemble's stored results in SQL from its members' stored vectors, for every sound
    a member has a result for; returns how many. Nothing is re-inferred."""
    run_id, _ = start_run(catalog, ensemble_id, 0, {"ensemble": True})
    with catalog.connect() as conn:
        conn.exec_driver_sql("""
            INSERT OR REPLACE INTO predictions (model_id, hash, run_id, label, confidence, second_label,
                                                second_confidence, embedding, predicted_at, probabilities)
            SELECT r1.ensemble_id, r1.hash, :run, r1.class, r1.probability, r2.class, r2.probability, NULL, :now,
                   (SELECT json_group_array(coalesce(ep.probability, 0)) FROM (
                        SELECT ep.probability FROM json_each((SELECT labels FROM models WHERE id = :e)) label
                        LEFT JOIN ensemble_probabilities ep
                          ON ep.ensemble_id = :e AND ep.hash = r1.hash AND ep.class = label.value
                        ORDER BY label.key) ep)
            FROM ensemble_ranked r1
            LEFT JOIN ensemble_ranked r2 ON r2.ensemble_id = r1.ensemble_id AND r2.hash = r1.hash AND r2.rank = 2
            WHERE r1.ensemble_id = :e AND r1.rank = 1""", {"run": run_id, "now": utc_now(), "e": ensemble_id})
        recompute_core_decisions(conn, ensemble_id)
        count = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id = ?", (ensemble_id,)).scalar()
        conn.exec_driver_sql("UPDATE inference_runs SET predicted = ? WHERE id = ?", (count, run_id))
    end_run(catalog, run_id, "finished")
    return count


def refresh_ensembles_with(catalog: Catalog, model_id: int) -> None:
    """After a member got new results, the ensembles it belongs to include them."""
    with catalog.read() as conn:
        ensembles = [r["ensemble_id"] for r in rows(conn, "SELECT ensemble_id FROM ensemble_members "
                                                          "WHERE model_id = :m", {"m": model_id})]
    for ensemble_id in ensembles:
        refresh_ensemble(catalog, ensemble_id)


RESULT_TABLES = ("core_decisions", "review_density", "inference_errors", "predictions", "inference_runs")
"""Every table holding a model's results, in an order that deletes rows before what they refer to."""


def retire_model(catalog: Catalog, model_id: int) -> None:
    """Forget a model and all its results, in one transaction; the active model and an ensemble's member
    are refused (the views, or the ensemble, would lose their results)."""
    with catalog.connect() as conn:
        in_use = conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM active_model WHERE model_id = :m) OR EXISTS "
            "(SELECT 1 FROM ensemble_members WHERE model_id = :m OR ensemble_id = :m)", {"m": model_id}).scalar()
        if in_use:
            raise DrumcatError(f"model {model_id} is the active model or part of an ensemble; it stays")
        for table in RESULT_TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE model_id = ?", (model_id,))
        conn.exec_driver_sql("DELETE FROM models WHERE id = ?", (model_id,))


def model_list(catalog: Catalog) -> list[dict[str, Any]]:
    """Every model the catalog knows, with its result count and whether the views use it."""
    with catalog.read() as conn:
        return rows(conn, """
            SELECT m.id, m.name, m.card_hash, m.id IN (SELECT model_id FROM active_model) AS active,
                   (SELECT count(*) FROM predictions p WHERE p.model_id = m.id) AS sounds, m.path, m.added_at
            FROM models m ORDER BY m.id""")


def resolve_models(catalog: Catalog, names: list[str]) -> list[int]:
    """Model ids from names (the newest model of that name) or ids, as `drumcat model list` shows them."""
    known = model_list(catalog)
    ids = []
    for name in names:
        matches = [m["id"] for m in known if m["name"] == name or str(m["id"]) == name.lstrip("#")]
        if not matches:
            listed = ", ".join(sorted({m["name"] for m in known})) or "none yet"
            raise DrumcatError(f"no model {name!r} in this catalog (known: {listed}); "
                               "run `drumcat infer --model PATH` to add one")
        ids.append(max(matches))
    if len(set(ids)) != len(ids):
        raise DrumcatError(f"model use: {' '.join(names)} names the same model twice")
    return ids


# --- the stored embedding format ---------------------------------------------------------------


SAMPLE = 2048  # 2 M pairs: the close radius is stable to 1e-3
CLOSE_QUANTILE = 0.99  # similarities above this share of sample pairs count as close


def embedding_sample(conn: Connection, model_id: int) -> list[dict[str, Any]]:
    """(hash, embedding) of the model's first SAMPLE sounds in hash order: random-like, and stable as the
    catalog grows."""
    return rows(conn, "SELECT hash, embedding FROM predictions WHERE model_id = :m AND embedding IS NOT NULL "
                      "ORDER BY hash LIMIT :n", {"m": model_id, "n": SAMPLE})


def close_similarity(population: np.ndarray) -> float:
    """The cosine similarity above which a pair counts as close: the CLOSE_QUANTILE of sample pairs."""
    if len(population) < 2:
        return 1.0
    similarities = population @ population.T
    # The pairs above the diagonal, row by row: what similarities[np.triu_indices(n, k=1)] gives, without its
    # two index arrays (32 MB of fresh pages for the 2,048 sample). The review order's step after `infer`
    # took 0.17 s instead of 0.21 on the bench archive (medians of 5, alternated).
    upper = np.concatenate([row[i + 1:] for i, row in enumerate(similarities[:-1])])
    position = int(CLOSE_QUANTILE * (upper.size - 1))
    return float(np.partition(upper, position)[position])  # the quantile, without a full sort


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero embedding stays zero and matches nothing)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def decode_embeddings(blobs: list[bytes]) -> np.ndarray:
    """predictions.embedding blobs (little-endian float16) as one float32 matrix."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=EMBEDDING_DTYPE).reshape(len(blobs), -1).astype(np.float32)

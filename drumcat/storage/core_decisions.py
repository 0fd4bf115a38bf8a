"""Core decisions: per prediction, the core folder a sound is filed under, its summed probability and margin.

The views route by them (`classified`, migration 0011) and the review order ranks by the margin. They
are computed from the stored probability vector with the catalog's canonical map
(`drumcat.taxonomy.core_decisions`): written with every batch of results, again for every prediction when
`drumcat rules apply` stores another map, and, for the active model, inside the rolled-back transaction
of a command that drumcat.toml gives a map of its own.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import Connection

from drumcat.storage.catalog import execute_many, pages_by_hash, rows
from drumcat.storage.rules import canonical_map
from drumcat.taxonomy import core_decisions

BATCH = 20_000


def write_core_decisions(conn: Connection, model_id: int, labels: list[str], hashes: list[str],
                         probabilities: np.ndarray) -> None:
    """Store the core decisions of one batch of a model's results."""
    decided = core_decisions(probabilities, labels, canonical_map(conn))
    execute_many(conn, "INSERT OR REPLACE INTO core_decisions (model_id, hash, core_label, probability, margin) "
                 "VALUES (?, ?, ?, ?, ?)",
                 list(zip([model_id] * len(hashes), hashes, decided.labels, decided.probabilities.tolist(),
                          decided.margins.tolist(), strict=True)))


def recompute_core_decisions(conn: Connection, model_id: int | None = None) -> int:
    """Decide again from the stored vectors, for one model or for all; returns how many predictions."""
    models = rows(conn, "SELECT id, labels FROM models" + ("" if model_id is None else " WHERE id = :m"),
                  {"m": model_id})
    return sum(_recompute_model(conn, model["id"], json.loads(model["labels"])) for model in models)


def _recompute_model(conn: Connection, model_id: int, labels: list[str]) -> int:
    def page(last: str) -> list[dict[str, Any]]:
        return rows(conn, """SELECT hash, probabilities FROM predictions WHERE model_id = :m AND hash > :last
            AND probabilities IS NOT NULL ORDER BY hash LIMIT :n""", {"m": model_id, "last": last, "n": BATCH})

    written = 0
    for batch in pages_by_hash(page):
        vectors = np.array([json.loads(r["probabilities"]) for r in batch], dtype=np.float64)
        write_core_decisions(conn, model_id, labels, [r["hash"] for r in batch], vectors)
        written += len(batch)
    return written

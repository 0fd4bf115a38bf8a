"""Core margins: per prediction, how sure the model is of the core class a sound is filed under.

The review order ranks by it (`review_queue`, migration 0010). It is computed from the stored
probability vector with the catalog's stored canonical map (`drumcat.taxonomy.core_margins`): written
with every batch of results, and again for every prediction when a new map is stored. A map that only
drumcat.toml sets, for one command, changes the folders that command sees but not the review order.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import Connection

from drumcat.storage.catalog import execute_many, pages_by_hash, rows
from drumcat.storage.rules import canonical_map
from drumcat.taxonomy import core_margins

BATCH = 20_000


def write_core_margins(conn: Connection, model_id: int, labels: list[str], hashes: list[str],
                       probabilities: np.ndarray) -> None:
    """Store the core margins of one batch of a model's results."""
    margins = core_margins(probabilities, labels, canonical_map(conn)).tolist()
    execute_many(conn, "INSERT OR REPLACE INTO core_margins (model_id, hash, margin) VALUES (?, ?, ?)",
                 [(model_id, digest, margin) for digest, margin in zip(hashes, margins, strict=True)])


def recompute_core_margins(conn: Connection, model_id: int | None = None) -> int:
    """Compute the core margins again from the stored vectors, of one model or of all; returns how many."""
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
        write_core_margins(conn, model_id, labels, [r["hash"] for r in batch], vectors)
        written += len(batch)
    return written

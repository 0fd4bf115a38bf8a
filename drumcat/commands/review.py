"""Close neighbours: how many other sounds lie near each sound in embedding space, for the review queue.

The views rank the review queue by the core margin (storage/core_decisions.py, migrations 10-11): the least
sure folder first. The neighbour count is shown beside it (`review_queue.neighbours`), a hint of how
many sounds like it a correction may move; weighting the priority by it, as migration 7 did, ranked
worse on held-out kits. This module counts the neighbours, for the sounds that have none counted yet,
after each `drumcat infer`.

"Close" is fixed per model by a sample of its embeddings (`close_similarity`, which `drumcat adapt`
shares). A sound's count is how many sample sounds lie within it, scaled to the whole catalog.
"""

from __future__ import annotations

import numpy as np

from drumcat.storage.catalog import Catalog, execute_many, rows
from drumcat.storage.results import close_similarity, decode_embeddings, embedding_sample, unit_rows

BATCH = 8192


def update_review_density(catalog: Catalog, model_id: int) -> int:
    """Count close neighbours for the model's sounds that have no count yet; returns how many it wrote."""
    with catalog.read() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id = ?", (model_id,)).scalar()
        pending = conn.exec_driver_sql("""SELECT count(*) FROM predictions p WHERE p.model_id = ? AND NOT EXISTS
            (SELECT 1 FROM review_density d WHERE d.model_id = p.model_id AND d.hash = p.hash)""",
                                       (model_id,)).scalar()
        if not pending or total < 2:
            return 0
        sample = embedding_sample(conn, model_id)
    population = unit_rows(decode_embeddings([r["embedding"] for r in sample]))
    in_sample = {r["hash"] for r in sample}
    close = close_similarity(population)
    scale = total / len(population)
    written = 0
    while True:
        with catalog.read() as conn:
            batch = rows(conn, """SELECT p.hash, p.embedding FROM predictions p WHERE p.model_id = :m
                AND p.embedding IS NOT NULL AND NOT EXISTS (SELECT 1 FROM review_density d
                WHERE d.model_id = p.model_id AND d.hash = p.hash) LIMIT :n""", {"m": model_id, "n": BATCH})
        if not batch:
            return written
        vectors = unit_rows(decode_embeddings([r["embedding"] for r in batch]))
        itself = np.array([r["hash"] in in_sample for r in batch])  # a sample sound does not count itself
        counts = np.maximum((vectors @ population.T >= close).sum(axis=1) - itself, 0) * scale
        with catalog.connect() as conn:
            execute_many(conn, "INSERT OR REPLACE INTO review_density VALUES (?, ?, ?, ?)",
                         [(model_id, r["hash"], int(round(c)), float(np.log(2 + c))) for r, c in zip(
                             batch, counts, strict=True)])
        written += len(batch)

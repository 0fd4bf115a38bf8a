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

from operator import itemgetter

import numpy as np
from sqlalchemy import Connection

from drumcat.storage.catalog import Catalog, execute_many, pages_by_hash
from drumcat.storage.results import close_similarity, decode_embeddings, embedding_sample, unit_rows

BATCH = 8192


def update_review_density(catalog: Catalog, model_id: int) -> int:
    """Count close neighbours for the model's sounds that have no count yet; returns how many it wrote."""
    with catalog.read() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id = ?", (model_id,)).scalar()
        if total < 2 or not _uncounted(conn, model_id, after="", limit=1):
            return 0
        sample = embedding_sample(conn, model_id)
    population = unit_rows(decode_embeddings([r["embedding"] for r in sample]))
    in_sample = {r["hash"] for r in sample}
    close = close_similarity(population)
    scale = total / len(population)

    def page(last: str) -> list[tuple[str, bytes]]:
        with catalog.read() as conn:
            return _uncounted(conn, model_id, after=last, limit=BATCH)

    written = 0
    for batch in pages_by_hash(page, hash_of=itemgetter(0)):
        hashes = [digest for digest, _ in batch]
        vectors = unit_rows(decode_embeddings([embedding for _, embedding in batch]))
        itself = np.fromiter((digest in in_sample for digest in hashes), bool, len(hashes))  # not its own neighbour
        counts = np.maximum(close_counts(vectors, population, close) - itself, 0) * scale
        with catalog.connect() as conn:
            execute_many(conn, "INSERT OR REPLACE INTO review_density VALUES (?, ?, ?, ?)",
                         [(model_id, digest, int(round(c)), float(np.log(2 + c))) for digest, c in zip(
                             hashes, counts.tolist(), strict=True)])
        written += len(batch)
    return written


def _uncounted(conn: Connection, model_id: int, *, after: str, limit: int) -> list[tuple[str, bytes]]:
    """(hash, embedding) of up to `limit` of the model's sounds after hash `after` with no neighbour count yet,
    in hash order (keyset paging: each page an index seek, where skipping the counted sounds from the start
    made the step quadratic, 26 s for 320,000 new sounds), as the driver's tuples: a dict per row cost a
    quarter of this step after `infer`."""
    return conn.exec_driver_sql("""SELECT p.hash, p.embedding FROM predictions p WHERE p.model_id = ? AND p.hash > ?
        AND p.embedding IS NOT NULL AND NOT EXISTS (SELECT 1 FROM review_density d
        WHERE d.model_id = p.model_id AND d.hash = p.hash) ORDER BY p.hash LIMIT ?""",
                                (model_id, after, limit)).fetchall()


COUNT_BLOCK = 512  # sounds per similarity product: a 4 MB block reused, not one fresh 40 MB matrix per batch


def close_counts(vectors: np.ndarray, population: np.ndarray, close: float) -> np.ndarray:
    """For each unit row of `vectors`, how many rows of `population` lie at cosine similarity `close` or more."""
    counts = np.empty(len(vectors), dtype=np.int64)
    block = np.empty((min(COUNT_BLOCK, len(vectors)), len(population)), dtype=np.float32)
    for start in range(0, len(vectors), COUNT_BLOCK):
        similarities = block[: min(COUNT_BLOCK, len(vectors) - start)]
        np.matmul(vectors[start:start + len(similarities)], population.T, out=similarities)
        counts[start:start + len(similarities)] = np.count_nonzero(similarities >= close, axis=1)
    return counts

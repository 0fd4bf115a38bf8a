"""The review queue's close-neighbour counts (drumcat/commands/review.py), against plain numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drumcat.commands.infer import infer
from drumcat.commands.review import COUNT_BLOCK, close_counts, update_review_density
from drumcat.model.bundle import ModelBundle
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import close_similarity, decode_embeddings, unit_rows


@settings(max_examples=25, deadline=None)
@given(sounds=st.integers(0, 2 * COUNT_BLOCK + 3), population=st.integers(1, 40), close=st.integers(-12, 12),
       seed=st.integers(0, 2**32 - 1))
def test_close_counts_are_the_pairs_at_or_above_the_radius(sounds: int, population: int, close: int,
                                                            seed: int) -> None:
    """Small whole numbers, so every similarity is exact whatever order a product sums in, and a pair
    exactly at the radius counts; sizes cross the block boundary."""
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-3, 4, size=(sounds, 6)).astype(np.float32)
    sample = rng.integers(-3, 4, size=(population, 6)).astype(np.float32)
    expected = [sum(int(np.dot(v, p)) >= close for p in sample) for v in vectors.astype(np.int64)]
    assert close_counts(vectors, sample, float(close)).tolist() == expected


def test_each_sound_counts_the_other_sample_sounds_within_the_radius(catalog: Catalog, scanned: Path,
                                                                    bundle: ModelBundle) -> None:
    """The fixture's catalog is smaller than the sample, so every sound is in it: a count is how many other
    sounds lie within the radius. Pairs within 1e-4 of it may fall either way (float32 products)."""
    infer(catalog, bundle, workers=1)
    with catalog.read() as conn:
        found = rows(conn, "SELECT p.model_id, p.hash, p.embedding, d.neighbours, d.weight FROM predictions p "
                           "JOIN review_density d USING (model_id, hash) ORDER BY p.hash")
        predicted = conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar()
    assert len(found) == predicted > 2
    vectors = unit_rows(decode_embeddings([r["embedding"] for r in found])).astype(np.float64)
    close = close_similarity(unit_rows(vectors))
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)  # a sound is not its own neighbour
    surely, maybe = (similarities >= close + 1e-4).sum(axis=1), (similarities >= close - 1e-4).sum(axis=1)
    counts = np.array([r["neighbours"] for r in found])
    assert np.all((surely <= counts) & (counts <= maybe)), (counts, surely, maybe)
    assert counts.sum() > 0
    assert np.allclose([r["weight"] for r in found], np.log(2 + counts))
    assert update_review_density(catalog, found[0]["model_id"]) == 0  # nothing left to count

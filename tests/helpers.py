"""Test helpers that write through drumcat's own code paths (no mocks): catalog rows for predictions."""

from __future__ import annotations

import json

import numpy as np

from drumcat.catalog import Catalog
from drumcat.results import write_results
from drumcat.taxonomy import FINE_CLASSES
from drumcat.times import utc_now


def record_predictions(catalog: Catalog, predictions: dict[str, dict[str, float]], model: str = "fixture") -> int:
    """Store probability vectors (hash -> {label: probability}) as an inference run of a model row."""
    labels = list(FINE_CLASSES)
    with catalog.connect() as conn:
        model_id = conn.exec_driver_sql(
            "INSERT INTO models (name, card_hash, path, labels, card, added_at) VALUES (?,?,?,?,?,?) RETURNING id",
            (model, f"hash-{model}", "/nowhere.keras", json.dumps(labels), "{}", utc_now()),
        ).scalar_one()
        run_id = conn.exec_driver_sql(
            "INSERT INTO inference_runs (model_id, started_at, config) VALUES (?,?,?) RETURNING id",
            (model_id, utc_now(), "{}"),
        ).scalar_one()
    hashes = list(predictions)
    probabilities = np.zeros((len(hashes), len(labels)), dtype=np.float32)
    for row, digest in enumerate(hashes):
        for label, p in predictions[digest].items():
            probabilities[row, labels.index(label)] = p
    write_results(catalog, model_id, run_id, labels, hashes, probabilities, np.zeros((len(hashes), 4)), [])
    return model_id

"""Runtimes: the LiteRT export and the Keras model give the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drumcat.model.bundle import ModelBundle, load_bundle
from drumcat.model.runtime import KerasRuntime
from tests.helpers import EXPORT_PROBABILITY_TOLERANCE, assert_embeddings_close, librosa_features


def test_lite_and_keras_runtimes_give_the_same_results(scanned: Path, bundle: ModelBundle) -> None:
    paths = sorted(str(p) for p in scanned.rglob("*") if p.is_file())[:12]
    features = np.stack([librosa_features(p, bundle.card.features) for p in paths]).astype(np.float32)
    keras_bundle = load_bundle(lite=False)
    assert isinstance(keras_bundle.runtime, KerasRuntime)
    lite_probabilities, lite_embeddings = bundle.predict(features)
    keras_probabilities, keras_embeddings = keras_bundle.predict(features)
    weights = bundle.card.lite_weights
    np.testing.assert_allclose(lite_probabilities, keras_probabilities, atol=EXPORT_PROBABILITY_TOLERANCE[weights])
    assert_embeddings_close(lite_embeddings, keras_embeddings, weights)

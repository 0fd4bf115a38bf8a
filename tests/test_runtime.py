"""Runtimes: the LiteRT export and the Keras model give the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drumcat.model.bundle import ModelBundle, load_bundle
from drumcat.model.runtime import KerasRuntime
from tests.helpers import librosa_features


def test_lite_and_keras_runtimes_give_the_same_results(scanned: Path, bundle: ModelBundle) -> None:
    paths = sorted(str(p) for p in scanned.rglob("*") if p.is_file())[:12]
    features = np.stack([librosa_features(p, bundle.card.features) for p in paths]).astype(np.float32)
    keras_bundle = load_bundle(lite=False)
    assert isinstance(keras_bundle.runtime, KerasRuntime)
    lite_probabilities, lite_embeddings = bundle.predict(features)
    keras_probabilities, keras_embeddings = keras_bundle.predict(features)
    np.testing.assert_allclose(lite_probabilities, keras_probabilities, atol=1e-4)
    np.testing.assert_allclose(lite_embeddings, keras_embeddings, rtol=1e-3, atol=1e-3)

"""Test helpers that go through drumcat's own code paths (no mocks): the command line in a fresh process,
catalog rows for predictions, reference features, tiny models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np

from drumcat.audio.features import FeatureRecipe, librosa_logmel
from drumcat.model.bundle import ModelCard
from drumcat.storage.catalog import Catalog
from drumcat.storage.results import activate_if_first, register_model, start_run, write_results
from drumcat.taxonomy import FINE_CLASSES


def record_predictions(catalog: Catalog, predictions: dict[str, dict[str, float]], model: str = "fixture") -> int:
    """Store probability vectors (hash -> {label: probability}) as an inference run of a model row."""
    labels = list(FINE_CLASSES)
    card = ModelCard(name=model, labels=labels, features=FeatureRecipe(), weights_sha256=f"fixture-{model}")
    model_id = register_model(catalog, card, Path(f"/nowhere/{model}.keras"))
    activate_if_first(catalog, model_id)  # as infer does: the catalog's first model is the active one
    run_id, _ = start_run(catalog, model_id, len(predictions), {})
    hashes = list(predictions)
    probabilities = np.zeros((len(hashes), len(labels)), dtype=np.float32)
    for row, digest in enumerate(hashes):
        for label, p in predictions[digest].items():
            probabilities[row, labels.index(label)] = p
    write_results(catalog, model_id, run_id, labels, hashes, probabilities, np.zeros((len(hashes), 4)), [])
    return model_id


EXPORT_PROBABILITY_TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "int8": 0.03}
"""How far a probability from the LiteRT export may lie from the Keras model's, by how the export stores its
weights (`ModelCard.lite_weights`): rounding alone for float32; int8 weights moved none of the shipped
model's test probabilities by more than 0.02 (README, "Performance")."""


def assert_embeddings_close(actual: np.ndarray, desired: np.ndarray, weights: str, tolerance: float = 1e-3) -> None:
    """Embeddings from two paths through one model agree: to `tolerance` where the export stores float32
    weights; where its weights are quantized every coordinate moves a little (int8: up to 3% seen in CI), and
    the direction, which `similar` ranks by, is what must stay."""
    if weights == "float32":
        np.testing.assert_allclose(actual, desired, rtol=tolerance, atol=tolerance)
        return
    cosine = (actual * desired).sum(axis=1) / (np.linalg.norm(actual, axis=1) * np.linalg.norm(desired, axis=1))
    assert cosine.min() > 0.99


def librosa_features(path: str, recipe: FeatureRecipe) -> np.ndarray:
    """The recipe computed independently, the reference design's way: librosa.load + librosa features."""
    samples, _ = librosa.load(path, sr=recipe.sample_rate, mono=True)
    start = 0
    if recipe.start_at_onset:  # 5 ms before the first sample above 2% of the peak, written out again here
        above = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
        start = max(0, int(above[0]) - int(0.005 * recipe.sample_rate))
    lead = int(round(recipe.lead_seconds * recipe.sample_rate))  # the file's own samples first, then zeros
    samples = np.concatenate([np.zeros(max(0, lead - start), dtype=samples.dtype), samples[max(0, start - lead):]])
    return librosa_logmel(samples, recipe)


def tiny_model(path: Path, classes: int, with_lambda: bool) -> Path:
    import keras

    inputs = keras.Input(shape=(40, 44, 1))
    x = keras.layers.Flatten()(inputs)
    if with_lambda:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    keras.Model(inputs, outputs).save(str(path))
    return path


# The reference design's MFCC recipe (model1.keras), which `drumcat model add` defaults to.
MFCC = FeatureRecipe(sample_rate=22_050, clip_seconds=1.0, feature_type="mfcc", n_mfcc=40, n_mels=128,
                     n_fft=2048, hop_length=512, fmin=0.0, peak_normalize=False)


def drumcat(*args: str, cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """The command line as a user runs it, in a fresh process; with `check`, it must succeed."""
    result = subprocess.run([sys.executable, "-m", "drumcat.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result

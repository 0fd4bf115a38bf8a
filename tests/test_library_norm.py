"""Batch-normalization statistics measured on a library (drumcat.model.library_norm), on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from drumcat.audio.features import compute_features, prepare_clips
from drumcat.audio.files import resample
from drumcat.audio.synth import INSTRUMENTS, SAMPLE_RATE, render
from drumcat.model.bundle import ModelBundle
from drumcat.model.library_norm import batch_norm_layers, with_library_statistics


@pytest.fixture(scope="module")
def network(bundle: ModelBundle):
    import keras

    return keras.models.load_model(bundle.path, safe_mode=True, compile=False)


@pytest.fixture(scope="module")
def library(bundle: ModelBundle) -> np.ndarray:
    """Features of real rendered one-shots, two takes of every instrument the synthesizer plays."""
    recipe = bundle.card.features
    clips = [resample(render(instrument, seed=seed), SAMPLE_RATE, recipe.sample_rate)
             for instrument in sorted(INSTRUMENTS) for seed in (3, 4)]
    return compute_features(prepare_clips(clips, recipe), recipe)


def test_each_layer_standardizes_with_the_library_statistics_of_its_input(network, library: np.ndarray) -> None:
    import keras

    before = [layer.moving_mean.numpy().copy() for layer in batch_norm_layers(network)]
    adapted = with_library_statistics(network, library)
    for layer in batch_norm_layers(adapted):
        seen = np.asarray(keras.Model(adapted.input, layer.input)(library), dtype=np.float64)
        seen = seen.reshape(-1, seen.shape[-1])
        np.testing.assert_allclose(layer.moving_mean.numpy(), seen.mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_variance.numpy(), seen.var(axis=0), rtol=1e-3, atol=1e-4)
    for layer, mean in zip(batch_norm_layers(network), before, strict=True):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)  # the base model is not changed


def test_a_library_recorded_at_another_level_gets_the_same_answers(network, library: np.ndarray) -> None:
    """A constant offset of every log-mel value (the whole library louder) moves the base model's
    probabilities; with statistics measured on each library, both get the same ones."""
    louder = library + 6.0
    base, base_louder = network.predict(library, verbose=0), network.predict(louder, verbose=0)
    assert np.abs(base - base_louder).max() > 0.05
    adapted = with_library_statistics(network, library).predict(library, verbose=0)
    adapted_louder = with_library_statistics(network, louder).predict(louder, verbose=0)
    np.testing.assert_allclose(adapted, adapted_louder, atol=1e-3)


def test_a_model_still_compiled_for_training_is_adapted_too(library: np.ndarray) -> None:
    """The kit folds adapt the network they have just trained, compiled with drumcat's own loss."""
    from drumcat.model.train.train import build_model, training_loss

    model = build_model(7)
    model.compile(optimizer="adam", loss=training_loss(1.0))
    adapted = with_library_statistics(model, library)
    assert adapted.predict(library, verbose=0).shape == (len(library), 7)

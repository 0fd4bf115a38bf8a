"""Batch-normalization statistics measured on a library instead of on the training kits (AdaBN).

A network's batch-normalization layers standardize each channel with a mean and variance learned from the
training kits. A library recorded through other gear, at other levels, shifts those statistics, and every
later layer sees inputs off the scale it was trained on. Re-estimating each layer's mean and variance on
the library's own sounds (no labels needed: Li et al. 2016, "Revisiting batch normalization for practical
domain adaptation") puts them back on scale. Layers are re-estimated in order, each on the outputs of the
layers before it as already re-estimated, so a layer sees what it will see at inference.

Measured on the kit folds (`drumcat train --kit-folds N --library-norm`; run 44 in docs/model-history.md): no
gain per library, a loss per kit, so nothing in the product uses it; it stays a probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH = 256


def batch_norm_layers(model: Any) -> list[Any]:
    """The model's batch-normalization layers in the order data meets them (a functional model lists its
    layers topologically)."""
    from keras import layers

    return [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]


def with_library_statistics(model: Any, features: np.ndarray) -> Any:
    """A copy of `model` whose batch-normalization layers use the mean and variance of their inputs over
    `features` (a library's sounds), the learned scale and offset kept. `model` itself is not changed."""
    import keras

    # From its config, not keras.models.clone_model: that also recompiles a compiled model, which needs its
    # loss function registered by name, and a copy used only to predict needs no loss.
    adapted = keras.Model.from_config(model.get_config())
    adapted.set_weights(model.get_weights())
    for layer in batch_norm_layers(adapted):
        mean, variance = _channel_statistics(keras.Model(adapted.input, layer.input), features)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return adapted


def _channel_statistics(upstream: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each channel of `upstream`'s output over every position of every sound, summed
    batch by batch in float64 so that a large library needs no more memory than one batch."""
    count, total, squares = 0, 0.0, 0.0
    for start in range(0, len(features), BATCH):
        values = np.asarray(upstream(features[start:start + BATCH], training=False), dtype=np.float64)
        values = values.reshape(-1, values.shape[-1])
        count += len(values)
        total = total + values.sum(axis=0)
        squares = squares + np.square(values).sum(axis=0)
    mean = total / count
    return mean, np.maximum(squares / count - np.square(mean), 0.0)

"""Inference runtimes: the Keras model itself, or its LiteRT export.

A runtime takes a feature batch and returns (class probabilities, embeddings), the model's two outputs.
The Keras model is the model of record (training, `drumcat model add`, the card's checks); beside it,
`NAME.tflite` is the same network exported to LiteRT, Google's TensorFlow Lite runtime, with its
sha256 in the card. `drumcat infer` prefers the export: LiteRT starts in 0.05 s where importing
TensorFlow and loading the Keras model take about 3 s, it runs this CNN as fast (XNNPACK), and it
gives the same numbers (tests/test_infer.py compares both). Models without an export run on Keras.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drumcat.errors import DrumcatError


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter is not for users; errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Mute file descriptor 2 while TensorFlow starts: its C++ logging ignores TF_CPP_MIN_LOG_LEVEL for
    start-up notices. Python exceptions are unaffected (they print after the descriptor is restored)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Runtime(Protocol):
    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def two_output_model(model: Any, embedding_layer: str | None) -> Any:
    """The Keras model with a second output: the embedding layer's activations (or the last layer's input)."""
    import keras

    embedding = model.get_layer(embedding_layer).output if embedding_layer else model.layers[-1].input
    return keras.Model(model.inputs, [model.outputs[0], embedding])


class KerasRuntime:
    def __init__(self, model: Any, embedding_layer: str | None) -> None:
        self.model = model
        self.two_outputs = two_output_model(model, embedding_layer)

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, embedding = self.two_outputs.predict_on_batch(features)
        return np.asarray(probabilities), np.asarray(embedding)

    def warm_up(self, input_shape: tuple[int, ...]) -> None:
        """Trace now, not on the first real batch (most of a second): two batch sizes, so Keras traces
        once more with the batch dimension left open."""
        for size in (1, 2):
            self.run(np.zeros((size, *input_shape), dtype=np.float32))


_OUTPUTS = ("output_0", "output_1")


class LiteRuntime:
    """A LiteRT flatbuffer, given as the bytes whose hash was checked (not re-read from disk), so that
    infer's worker processes run exactly the model the card vouches for."""

    def __init__(self, content: bytes, where: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.where = where
        try:
            # Silenced: the runtime announces its CPU delegate on file descriptor 2 at the first call.
            with native_stderr_silenced():
                interpreter = Interpreter(model_content=content, num_threads=threads or os.cpu_count() or 1)
                self.signature = interpreter.get_signature_runner()
                details = self.signature.get_input_details()
                self.input_name = next(iter(details))
                self.input_shape = tuple(int(d) for d in details[self.input_name]["shape"][1:])
                outputs = self.signature.get_output_details()
                # Outputs in the Keras model's order: probabilities, then the embedding (lite_flatbuffer).
                self.output_widths = [int(outputs[name]["shape"][-1]) for name in _OUTPUTS if name in outputs]
                if len(outputs) == len(_OUTPUTS) == len(self.output_widths):
                    self.run(np.zeros((1, *self.input_shape), dtype=np.float32))
        except (ValueError, RuntimeError) as exc:
            raise DrumcatError(f"{where}: not a usable LiteRT model ({exc}); delete it to run the Keras model") \
                from exc

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self.signature(**{self.input_name: np.ascontiguousarray(features, dtype=np.float32)})
        return outputs[_OUTPUTS[0]], outputs[_OUTPUTS[1]]


LITE_WEIGHTS = ("float32", "int8", "float16")
"""How a LiteRT export stores its weights: as trained, or quantized (dynamic-range int8, float16)."""


def lite_flatbuffer(two_outputs: Any, weights: str = "float32") -> bytes:
    """The two-output Keras model as a LiteRT flatbuffer (built-in operators only), its weights stored as
    `weights` says (`bench/quantize.py` measures what each costs)."""
    # TensorFlow and the converter log to file descriptor 2; Keras prints the traced signature to stdout.
    with native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()):
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(two_outputs)
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


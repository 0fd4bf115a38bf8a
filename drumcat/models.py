"""Model bundles: a `.keras` file beside its JSON card, checked against each other and loaded safely.

The card is the single source of truth for labels, preprocessing and calibration. Loading refuses a
bundle whose model does not match its card, and Keras safe mode stays on unless the user trusts the model.
TensorFlow is imported only inside the functions that load or run a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.catalog import utc_now
from drumcat.errors import DrumcatError
from drumcat.features import FeatureRecipe
from drumcat.metrics import apply_temperature
from drumcat.resources import default_model_path

CARD_FORMAT = "drumcat-model-card/1"


def card_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class ModelCard:
    name: str
    labels: list[str]
    features: FeatureRecipe
    weights_sha256: str
    version: str = "1"
    temperature: float = 1.0
    """Calibration: probabilities are softmax(log(p) / temperature) before they are stored."""
    embedding_layer: str | None = None
    """Layer whose output is stored as the embedding; None means the input of the last layer."""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.features.input_shape

    def to_json(self) -> str:
        data = {
            "format": CARD_FORMAT, "name": self.name, "version": self.version, "labels": self.labels,
            "features": self.features.as_dict(), "input_shape": list(self.input_shape),
            "weights_sha256": self.weights_sha256, "temperature": self.temperature,
            "embedding_layer": self.embedding_layer, "created_at": self.created_at,
            "training": self.training, "metrics": self.metrics,
        }
        return json.dumps(data, indent=2) + "\n"

    def card_hash(self) -> str:
        """Identifies exactly this model and preprocessing: stored with every inference run."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DrumcatError(
                f"{path}: model card not found; write one with `drumcat model add MODEL.keras --labels FILE`"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DrumcatError(f"{path}: model card is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        missing = [key for key in ("name", "labels", "features", "weights_sha256") if key not in data]
        if missing:
            raise DrumcatError(f"{path}: model card lacks {', '.join(missing)}")
        recipe = FeatureRecipe.from_dict(data["features"], where=f"{path}: features")
        card = cls(
            name=data["name"], labels=list(data["labels"]), features=recipe,
            weights_sha256=data["weights_sha256"], version=str(data.get("version", "1")),
            temperature=float(data.get("temperature", 1.0)), embedding_layer=data.get("embedding_layer"),
            training=data.get("training", {}), metrics=data.get("metrics", {}),
            created_at=data.get("created_at", utc_now()),
        )
        if "input_shape" in data and tuple(data["input_shape"]) != card.input_shape:
            raise DrumcatError(
                f"{path}: input_shape {data['input_shape']} does not match the feature recipe "
                f"{list(card.input_shape)}; fix the card's features or input_shape"
            )
        if len(set(card.labels)) != len(card.labels) or not card.labels:
            raise DrumcatError(f"{path}: labels must be a non-empty list of unique names")
        return card


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter is not for users; errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextmanager
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


def _load_keras(model_path: Path, trust_unsafe: bool) -> Any:
    quiet_tensorflow()
    with native_stderr_silenced():
        import keras

    try:
        with native_stderr_silenced():
            return keras.saving.load_model(str(model_path), compile=False, safe_mode=not trust_unsafe)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower() or "lambda" in str(exc).lower():
            raise DrumcatError(
                f"{model_path}: the model needs unsafe deserialization (e.g. a Lambda layer) and Keras safe "
                "mode refuses it; pass --trust-model only if you made this model yourself"
            ) from exc
        raise DrumcatError(f"{model_path}: cannot load the Keras model ({exc})") from exc
    except Exception as exc:  # corrupt zip, wrong file type, missing custom objects
        raise DrumcatError(f"{model_path}: cannot load the Keras model ({type(exc).__name__}: {exc})") from exc


@dataclass
class ModelBundle:
    """A model checked against its card. The Keras part may still be loading in a background thread
    (`load_bundle(..., background=True)`): `keras_model` and `predict` wait for it; `ready()` waits and
    raises what loading raised."""

    path: Path
    card: ModelCard
    _loading: Future = field(repr=False)
    _runner: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def keras_model(self) -> Any:
        return self._loading.result()

    def ready(self) -> ModelBundle:
        self._loading.result()
        return self

    def _embedding_runner(self) -> Any:
        if self._runner is None:
            self._runner = _embedding_runner(self.keras_model, self.card)
        return self._runner

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated class probabilities (batch, labels) and embeddings (batch, dims) for a feature batch."""
        probabilities, embedding = self._embedding_runner().predict_on_batch(features)
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if np.any(probabilities < 0) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
            # A model ending in logits, not softmax: turn them into probabilities first.
            shifted = probabilities - probabilities.max(axis=1, keepdims=True)
            probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        calibrated = apply_temperature(probabilities, self.card.temperature)
        embedding = np.asarray(embedding, dtype=np.float32).reshape(len(features), -1)
        return calibrated.astype(np.float32), embedding


def _embedding_runner(model: Any, card: ModelCard) -> Any:
    """One Keras call that returns both the class probabilities and the embedding layer's output."""
    import keras

    embedding = model.get_layer(card.embedding_layer).output if card.embedding_layer else model.layers[-1].input
    return keras.Model(model.inputs, [model.outputs[0], embedding])


def check_model_against_card(model: Any, card: ModelCard, where: Path) -> None:
    outputs = model.outputs[0].shape[-1]
    if outputs != len(card.labels):
        raise DrumcatError(
            f"{where}: the model has {outputs} outputs but its card lists {len(card.labels)} labels; "
            "fix the card's labels (or --labels file) to match the model"
        )
    model_input = tuple(model.inputs[0].shape[1:])
    if model_input != card.input_shape:
        raise DrumcatError(
            f"{where}: the model expects input {list(model_input)} but the card's feature recipe gives "
            f"{list(card.input_shape)}; fix the card's features"
        )


def load_bundle(model_path: Path | None = None, *, trust_unsafe: bool = False, background: bool = False) -> ModelBundle:
    """Load a model and its card, refusing any mismatch between them.

    The card and the weights hash are checked at once. With `background`, TensorFlow and the Keras model
    load in a thread (a few seconds) while the caller goes on, e.g. starting `infer`'s decode workers."""
    model_path = Path(model_path) if model_path else default_model_path()
    if not model_path.is_file():
        raise DrumcatError(f"{model_path}: model file not found; set model.path in drumcat.toml or pass --model")
    card = ModelCard.read(card_path_for(model_path))
    actual = file_sha256(model_path)
    if actual != card.weights_sha256:
        raise DrumcatError(
            f"{model_path}: weights sha256 {actual[:12]}… does not match its card ({card.weights_sha256[:12]}…); "
            "the model file changed since the card was written: re-run `drumcat model add`"
        )

    def load_checked() -> Any:
        model = _load_keras(model_path, trust_unsafe)
        check_model_against_card(model, card, model_path)
        return model

    def load_and_warm_up() -> Any:
        """Also build the probabilities+embedding runner and trace it, so the first real batch does not
        wait for TensorFlow's graph tracing (most of a second)."""
        model = load_checked()
        bundle._runner = _embedding_runner(model, card)
        for size in (1, 2):  # the second size makes Keras trace once more, for any batch size
            bundle._runner.predict_on_batch(np.zeros((size, *card.input_shape), dtype=np.float32))
        return model

    bundle = ModelBundle(model_path, card, Future())
    if background:
        threading.Thread(target=_resolve, args=(bundle._loading, load_and_warm_up), name="drumcat-model-load",
                         daemon=True).start()
    else:
        _resolve(bundle._loading, load_checked)
        bundle.ready()
    return bundle


def _resolve(future: Future, work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:  # handed to whoever waits on the future
        future.set_exception(exc)


def add_model(
    model_path: Path,
    labels: list[str],
    recipe: FeatureRecipe,
    *,
    name: str | None = None,
    trust_unsafe: bool = False,
    overwrite: bool = False,
) -> ModelCard:
    """Write a card beside a user's own model (bring your own model), after checking that they match."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise DrumcatError(f"{model_path}: model file not found")
    card_path = card_path_for(model_path)
    if card_path.exists() and not overwrite:
        raise DrumcatError(f"{card_path}: a card already exists; pass --force to replace it")
    card = ModelCard(
        name=name or model_path.stem, labels=labels, features=recipe, weights_sha256=file_sha256(model_path),
        training={"sources": "brought by the user; not trained by drumcat"},
    )
    model = _load_keras(model_path, trust_unsafe)
    check_model_against_card(model, card, model_path)
    card_path.write_text(card.to_json(), encoding="utf-8")
    return card


def save_bundle(model: Any, card: ModelCard, model_path: Path) -> ModelCard:
    """Save a Keras model and write its card with the weights hash (used by training)."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(model_path))
    card.weights_sha256 = file_sha256(model_path)
    card_path_for(model_path).write_text(card.to_json(), encoding="utf-8")
    return card

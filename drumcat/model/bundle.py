"""Model bundles: a `.keras` file beside its JSON card, checked against each other and loaded safely.

The card is the single source of truth for labels, preprocessing and calibration. Loading refuses a
bundle whose model does not match its card, and Keras safe mode stays on unless the user trusts the model.
TensorFlow is imported only inside the functions that load or run a model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.audio.features import FeatureRecipe
from drumcat.errors import DrumcatError
from drumcat.model.metrics import calibrated
from drumcat.model.runtime import (
    KerasRuntime,
    LiteRuntime,
    Runtime,
    lite_flatbuffer,
    native_stderr_silenced,
    quiet_tensorflow,
    two_output_model,
)
from drumcat.resources import default_model_path
from drumcat.staging import file_sha256, write_whole
from drumcat.times import utc_now

CARD_FORMAT = "drumcat-model-card/1"


def card_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def lite_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".tflite")


def bundle_files(model_path: Path) -> tuple[Path, Path, Path]:
    """A bundle's files in the order they are moved in: the Keras model, its LiteRT export, and its card
    last (the card is what makes the others loadable)."""
    return Path(model_path), lite_path_for(model_path), card_path_for(model_path)


def first_free_bundle(candidates: Iterable[Path]) -> Path:
    """The first model path none of whose bundle files exists (a card or an export alone takes a name)."""
    return next(path for path in candidates if not any(file.exists() for file in bundle_files(path)))


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
    litert_sha256: str | None = None
    """sha256 of NAME.tflite, the LiteRT export `infer` runs (drumcat/model/runtime.py); None: no export."""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    """When drumcat wrote the card (training, `model add`); a hand-written card may leave it out, and then
    it stays out, so the card's hash, and the model's id in a catalog, do not change between reads."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.features.input_shape

    @property
    def lite_weights(self) -> str:
        """How the LiteRT export stores its weights (`LITE_WEIGHTS`): written by training, float32 before."""
        return str(self.training.get("litert_weights", "float32"))

    def to_json(self) -> str:
        data = {
            "format": CARD_FORMAT, "name": self.name, "version": self.version, "labels": self.labels,
            "features": self.features.as_dict(), "input_shape": list(self.input_shape),
            "weights_sha256": self.weights_sha256, "temperature": self.temperature,
            "embedding_layer": self.embedding_layer, "litert_sha256": self.litert_sha256,
            "created_at": self.created_at,
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
            litert_sha256=data.get("litert_sha256"),
            training=data.get("training", {}), metrics=data.get("metrics", {}),
            created_at=data.get("created_at"),
        )
        if "input_shape" in data and tuple(data["input_shape"]) != card.input_shape:
            raise DrumcatError(
                f"{path}: input_shape {data['input_shape']} does not match the feature recipe "
                f"{list(card.input_shape)}; fix the card's features or input_shape"
            )
        if len(set(card.labels)) != len(card.labels) or not card.labels:
            raise DrumcatError(f"{path}: labels must be a non-empty list of unique names")
        return card


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
    """A model checked against its card, with the runtime that runs it (drumcat/model/runtime.py). A Keras
    runtime may still be loading in a background thread (`load_bundle(..., background=True)`):
    `predict` waits for it, and `ready()` waits and raises what loading raised."""

    path: Path
    card: ModelCard
    _runtime: Future = field(repr=False)
    trust_unsafe: bool = False
    lite_path: Path | None = None
    """The checked LiteRT export when the bundle runs on LiteRT (its hash is card.litert_sha256): small
    and self-contained, so infer's worker processes each run it. None for a Keras runtime."""
    _keras_model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def runtime(self) -> Runtime:
        return self._runtime.result()

    @property
    def keras_model(self) -> Any:
        """The Keras model itself (loaded on first use when the bundle runs on LiteRT)."""
        if isinstance(self.runtime, KerasRuntime):
            return self.runtime.model
        if self._keras_model is None:
            self._keras_model = _load_checked_keras(self.path, self.card, self.trust_unsafe)
        return self._keras_model

    def ready(self) -> ModelBundle:
        self._runtime.result()
        return self

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated class probabilities (batch, labels) and embeddings (batch, dims) for a feature batch."""
        return calibrated(*self.runtime.run(features), self.card.temperature, self.path)


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


def load_bundle(
    model_path: Path | None = None, *, trust_unsafe: bool = False, background: bool = False, lite: bool = True
) -> ModelBundle:
    """Load a model and its card, refusing any mismatch between them.

    The card and the weights hash are checked at once. With `lite` (the default) and a LiteRT export
    whose hash the card records, the bundle runs on LiteRT and TensorFlow is never imported. Otherwise
    it runs on Keras; with `background`, TensorFlow and the model load in a thread (about 3 s) while
    the caller goes on, e.g. starting `infer`'s decode workers."""
    model_path = Path(model_path) if model_path else default_model_path()
    if not model_path.is_file():
        raise DrumcatError(f"{model_path}: model file not found; set model.path in drumcat.toml or pass --model")
    card = ModelCard.read(card_path_for(model_path))
    _check_hash(model_path, card.weights_sha256, "re-run `drumcat model add`")
    bundle = ModelBundle(model_path, card, Future(), trust_unsafe)
    lite_path = lite_path_for(model_path)
    if lite and card.litert_sha256 and lite_path.is_file():
        content = read_checked_lite(lite_path, card.litert_sha256)
        _resolve(bundle._runtime, lambda: _checked_lite_runtime(lite_path, card, content))
        bundle.lite_path = lite_path
        bundle.ready()
        return bundle

    def keras_runtime() -> KerasRuntime:
        runtime = KerasRuntime(_load_checked_keras(model_path, card, trust_unsafe), card.embedding_layer)
        if background:
            runtime.warm_up(card.input_shape)
        return runtime

    if background:
        threading.Thread(target=_resolve, args=(bundle._runtime, keras_runtime), name="drumcat-model-load",
                         daemon=True).start()
    else:
        _resolve(bundle._runtime, keras_runtime)
        bundle.ready()
    return bundle


def read_checked_lite(path: Path, expected_sha256: str) -> bytes:
    """A LiteRT export's bytes, refused if they are not the ones its card vouches for."""
    content = path.read_bytes()
    _check_hash(path, expected_sha256, "delete it to run the Keras model, or re-run `drumcat model add`", content)
    return content


def _check_hash(path: Path, expected: str, fix: str, content: bytes | None = None) -> None:
    actual = file_sha256(path) if content is None else hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise DrumcatError(f"{path}: sha256 {actual[:12]}… does not match its card ({expected[:12]}…); "
                           f"the file changed since the card was written: {fix}")


def _load_checked_keras(model_path: Path, card: ModelCard, trust_unsafe: bool) -> Any:
    model = _load_keras(model_path, trust_unsafe)
    check_model_against_card(model, card, model_path)
    return model


def _checked_lite_runtime(path: Path, card: ModelCard, content: bytes | None = None) -> LiteRuntime:
    # One thread: a thread pool would outlive this call, and infer forks its workers only from a
    # process without other threads (drumcat/workers.py). infer's workers run the model, not this one.
    runtime = LiteRuntime(path.read_bytes() if content is None else content, path, threads=1)
    outputs = runtime.output_widths
    if runtime.input_shape != card.input_shape or len(outputs) != 2 or outputs[0] != len(card.labels):
        raise DrumcatError(
            f"{path}: the LiteRT export takes {list(runtime.input_shape)} and gives outputs {outputs}, but the "
            f"card says input {list(card.input_shape)} and {len(card.labels)} labels; delete it to run the "
            "Keras model, or re-run `drumcat model add`"
        )
    return runtime


def _resolve(future: Future, work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:  # handed to whoever waits on the future
        future.set_exception(exc)


def write_lite_export(model: Any, card: ModelCard, model_path: Path, weights: str = "float32") -> bool:
    """Export the model to LiteRT beside it, its weights stored as `weights` says (`LITE_WEIGHTS`), and record
    the export's hash in the card (not written here). A model LiteRT cannot express (e.g. an operator it
    lacks) keeps running on Keras: returns False."""
    lite_path = lite_path_for(model_path)
    try:
        write_whole(lite_path, lite_flatbuffer(two_output_model(model, card.embedding_layer), weights))
        _checked_lite_runtime(lite_path, card)
    except Exception:  # the converter raises many kinds; the Keras runtime remains, so nothing is lost
        lite_path.unlink(missing_ok=True)
        card.litert_sha256 = None
        return False
    card.litert_sha256 = file_sha256(lite_path)
    return True


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
    if lite_path_for(model_path).exists() and not overwrite:  # the user's own export, perhaps of another model
        raise DrumcatError(f"{lite_path_for(model_path)}: a file is where drumcat writes the model's LiteRT "
                           "export; move it, or pass --force to replace it")
    card = ModelCard(
        name=name or model_path.stem, labels=labels, features=recipe, weights_sha256=file_sha256(model_path),
        training={"sources": "brought by the user; not trained by drumcat"}, created_at=utc_now(),
    )
    model = _load_checked_keras(model_path, card, trust_unsafe)
    if not trust_unsafe:  # a model trusted once stays on Keras, so every later load asks for trust again
        write_lite_export(model, card, model_path)
    write_whole(card_path, card.to_json())  # with --force, a kill leaves the old card whole
    return card


def save_bundle(model: Any, card: ModelCard, model_path: Path) -> ModelCard:
    """Save a Keras model, its LiteRT export (weights as `card.lite_weights` says) and its card with both
    hashes (used by training and adapt)."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(model_path))
    card.weights_sha256 = file_sha256(model_path)
    write_lite_export(model, card, model_path, card.lite_weights)
    write_whole(card_path_for(model_path), card.to_json())
    return card

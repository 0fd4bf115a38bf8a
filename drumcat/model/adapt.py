"""`drumcat adapt`: a model that learns from its owner's corrections, in seconds, on the CPU.

The adapted model is the base model's network up to its embedding, with a new output layer fitted on
this catalog: the overrides (the owner's labels, each a sound of this library) and a replay sample of the
library's other sounds with the base model's own calibrated probabilities as soft targets (so classes
nobody corrected are not forgotten), pulled toward the base output layer (an L2 penalty on the change).
A correction also carries over: every other sound of the catalog within the close radius of a corrected
one (the review order's radius, the 1% nearest pairs) and in the same folder (other velocity layers and
round robins of the same instrument, copies beside it) is given the correction's label as its target
instead of the base model's vector. A close sound of another folder keeps the base model's vector: at the
radius's edge it can be another instrument of the same machine, or another kit's drum that sounds alike
(bench/adapt.py --carried; README, "Adapting to your library").
The output layer starts as the base model's own, temperature included, so with nothing learned the
adapted model is the base model. Everything is fitted on the embeddings `infer` stored (an override's
file is decoded again only when the base model has no embedding for it), so no audio is re-read for
the thousands of replay sounds, and the new model's results for every sound are computed from the same
stored embeddings: the views can switch to it at once.

Measured against the alternatives in bench/adapt.py (README, "Adapting to your library").
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelBundle, ModelCard, bundle_files, first_free_bundle, load_bundle, save_bundle
from drumcat.model.metrics import accuracy
from drumcat.resources import models_dir
from drumcat.staging import files_staged_beside, move_in, remove_abandoned_file_writes
from drumcat.storage.catalog import Catalog, pages_by_hash, rows
from drumcat.storage.results import (
    close_similarity,
    decode_embeddings,
    embedding_sample,
    end_run,
    register_model,
    set_active_model,
    start_run,
    unit_rows,
    write_results,
)
from drumcat.taxonomy import MISC, canonical, core_decisions
from drumcat.times import utc_now

MIN_OVERRIDES = 20
REPLAY_PER_OVERRIDE = 10
MIN_REPLAY = 2000
OVERRIDE_WEIGHT = 4.0  # an owner's correction counts as much as this many replayed sounds
L2_TO_BASE = 1e-3
STEPS = 400
FOLDS = 5
PAGE = 20_000  # stored embeddings read at a time


@dataclass
class Head:
    """A softmax output layer over embeddings: probabilities = softmax(embedding @ weights + bias)."""

    weights: np.ndarray  # (dims, labels)
    bias: np.ndarray  # (labels,)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class Examples:
    embeddings: np.ndarray
    targets: np.ndarray  # (n, labels): one-hot for overrides, the base model's vector for replay
    weights: np.ndarray  # per example


@dataclass
class AdaptReport:
    out: Path
    base: str
    model_id: int
    overrides_used: dict[str, int]
    skipped: dict[str, int]
    replay: int
    cross_validation: dict[str, Any]
    activated: bool
    seconds: float = 0.0
    new_labels: list[str] = field(default_factory=list)
    carried_over: int = 0
    """Uncorrected sounds within the close radius of a correction, fitted with its label."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "out": str(self.out)}


def fit_head(start: Head, examples: Examples, *, steps: int = STEPS, l2: float = L2_TO_BASE) -> Head:
    """Weighted cross-entropy by full-batch Adam, with an L2 pull toward `start` (the base layer)."""
    weights, bias = start.weights.copy(), start.bias.copy()
    moments = [np.zeros_like(weights), np.zeros_like(bias)]
    squares = [np.zeros_like(weights), np.zeros_like(bias)]
    share = examples.weights / examples.weights.sum()
    rate, beta1, beta2 = 0.01, 0.9, 0.999
    for step in range(1, steps + 1):
        error = (Head(weights, bias).probabilities(examples.embeddings) - examples.targets) * share[:, None]
        gradients = [examples.embeddings.T @ error + l2 * (weights - start.weights),
                     error.sum(axis=0) + l2 * (bias - start.bias)]
        for i, (param, grad) in enumerate(zip((weights, bias), gradients, strict=True)):
            moments[i] = beta1 * moments[i] + (1 - beta1) * grad
            squares[i] = beta2 * squares[i] + (1 - beta2) * grad ** 2
            param -= rate * (moments[i] / (1 - beta1 ** step)) / (np.sqrt(squares[i] / (1 - beta2 ** step)) + 1e-8)
    return Head(weights, bias)


def base_head(bundle: ModelBundle, labels: list[str]) -> Head:
    """The base model's output layer with its temperature folded in, widened for new labels (which start
    far below every other class)."""
    last = bundle.keras_model.layers[-1]
    if type(last).__name__ != "Dense" or getattr(last.activation, "__name__", "") != "softmax":
        raise DrumcatError(f"{bundle.path}: adapt needs a model whose last layer is a Dense softmax layer")
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in last.get_weights())
    kernel, bias = kernel / bundle.card.temperature, bias / bundle.card.temperature
    extra = len(labels) - kernel.shape[1]
    if extra:
        kernel = np.concatenate([kernel, np.zeros((kernel.shape[0], extra))], axis=1)
        bias = np.concatenate([bias, np.full(extra, bias.min() - 5.0)])
    return Head(kernel, bias)


def embedding_tensor_layer(model: Any, card: ModelCard) -> str:
    """The name of the layer whose output is the embedding (the card's, or the last layer's input)."""
    if card.embedding_layer:
        return card.embedding_layer
    return model.layers[-1].input._keras_history.operation.name


def adapted_keras_model(bundle: ModelBundle, head: Head) -> Any:
    """The base network up to its embedding, then a Dense softmax layer holding `head`."""
    import keras

    base = bundle.keras_model
    embedding = base.get_layer(embedding_tensor_layer(base, bundle.card)).output
    output = keras.layers.Dense(head.weights.shape[1], activation="softmax", name="probabilities_adapted")
    model = keras.Model(base.inputs, output(embedding), name=f"{base.name}_adapted")
    output.set_weights([head.weights.astype(np.float32), head.bias.astype(np.float32)])
    return model


# --- the catalog's side ------------------------------------------------------------------------------


def base_model_row(catalog: Catalog, base: str | None) -> dict[str, Any]:
    from drumcat.storage.results import resolve_models

    with catalog.read() as conn:
        if base is None:
            base_id = conn.exec_driver_sql("SELECT model_id FROM embedding_model").scalar()
            if base_id is None:
                raise DrumcatError("no model has classified this catalog yet; run `drumcat infer` first")
        else:
            base_id = resolve_models(catalog, [base])[0]
        return rows(conn, "SELECT id, name, path, labels, card_hash FROM models WHERE id = :i", {"i": base_id})[0]


def override_examples(catalog: Catalog, bundle: ModelBundle, model_id: int, labels: list[str],
                      skipped: Counter) -> tuple[list[str], np.ndarray, list[str]]:
    """(hash, embedding, label) of each usable override: the stored embedding, or the file decoded again."""
    from drumcat.model.pipeline import featurize

    with catalog.read() as conn:
        found = rows(conn, """
            SELECT o.hash, o.label, p.embedding, u.path FROM overrides o
            LEFT JOIN predictions p ON p.hash = o.hash AND p.model_id = :m
            LEFT JOIN unique_files u ON u.hash = o.hash ORDER BY o.hash""", {"m": model_id})
    hashes, vectors, targets = [], [], []
    for row in found:
        if row["label"] not in labels:
            skipped[f"label {row['label']} unknown to the base model"] += 1
            continue
        if row["embedding"] is not None:
            vector = decode_embeddings([row["embedding"]])[0]
        elif row["path"] is None:
            skipped["file missing (no present copy since the last scan)"] += 1
            continue
        else:
            _, features, errors = featurize([(row["hash"], row["path"])], bundle.card.features)
            if errors:
                skipped["file unreadable"] += 1
                continue
            vector = bundle.predict(features)[1][0]
        hashes.append(row["hash"])
        vectors.append(vector)
        targets.append(row["label"])
    if not vectors:  # none usable: adapt refuses with the minimum, which needs len() of an empty array
        return hashes, np.zeros((0, 0)), targets
    return hashes, np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1), targets


Folders = list[frozenset[str]]  # per sound, the folders holding a present copy of it


@dataclass
class Corrections:
    """The overrides adapt learns from: each corrected sound's embedding, its owner's label, its folders."""

    embeddings: np.ndarray
    labels: list[str]
    folders: Folders

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> Corrections:
        return Corrections(self.embeddings[indices], [self.labels[i] for i in indices],
                           [self.folders[i] for i in indices])


@dataclass
class Pool:
    """Uncorrected sounds of this catalog: their embeddings, the base model's stored calibrated vectors and
    their folders."""

    hashes: list[str]
    embeddings: np.ndarray
    targets: np.ndarray
    folders: Folders

    def merged(self, other: Pool) -> Pool:
        if not self.hashes or not other.hashes:
            return self if self.hashes else other
        known = set(self.hashes)
        keep = [i for i, digest in enumerate(other.hashes) if digest not in known]
        return Pool(self.hashes + [other.hashes[i] for i in keep],
                    np.concatenate([self.embeddings, other.embeddings[keep]]),
                    np.concatenate([self.targets, other.targets[keep]]),
                    self.folders + [other.folders[i] for i in keep])


def folders_of(catalog: Catalog, hashes: list[str]) -> Folders:
    """The folders (parent directories) holding a present copy of each sound."""
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, path FROM present_files WHERE hash IN (SELECT value FROM json_each(:h))",
                     {"h": json.dumps(hashes)})
    held: dict[str, set[str]] = {}
    for row in found:
        held.setdefault(row["hash"], set()).add(os.path.dirname(row["path"]))
    return [frozenset(held.get(digest, ())) for digest in hashes]


def sharing_a_folder(folders: Folders, others: Folders) -> np.ndarray:
    """(len(folders), len(others)) booleans: whether the two sounds have a copy in the same folder."""
    columns: dict[str, list[int]] = {}
    for j, held in enumerate(others):
        for folder in held:
            columns.setdefault(folder, []).append(j)
    shared = np.zeros((len(folders), len(others)), dtype=bool)
    for i, held in enumerate(folders):
        for folder in held:
            shared[i, columns.get(folder, [])] = True
    return shared


def carry_similarity(embeddings: np.ndarray, folders: Folders, corrections: Corrections) -> np.ndarray:
    """Each sound's cosine similarity to each correction where the two share a folder, -inf elsewhere: the
    one home of the carry-over rule (within the close radius, in the correction's folder)."""
    similarity = unit_rows(embeddings) @ unit_rows(corrections.embeddings).T
    return np.where(sharing_a_folder(folders, corrections.folders), similarity, -np.inf)


def _pool_of(catalog: Catalog, found: list[dict[str, Any]], n_labels: int, folders: Folders | None = None) -> Pool:
    """The pool of these prediction rows; their folders are read unless the caller has them already."""
    if not found:
        return Pool([], np.zeros((0, 0)), np.zeros((0, n_labels)), [])
    vectors = decode_embeddings([r["embedding"] for r in found]).astype(np.float64)
    targets = np.array([json.loads(r["probabilities"]) for r in found], dtype=np.float64)
    if targets.shape[1] < n_labels:  # new labels: the base model never gives them
        targets = np.concatenate([targets, np.zeros((len(targets), n_labels - targets.shape[1]))], axis=1)
    hashes = [r["hash"] for r in found]
    return Pool(hashes, vectors, targets, folders if folders is not None else folders_of(catalog, hashes))


UNCORRECTED = """SELECT p.hash, p.embedding, p.probabilities FROM predictions p
    WHERE p.model_id = :m AND p.embedding IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.hash = p.hash)"""


def replay_examples(catalog: Catalog, model_id: int, count: int, n_labels: int) -> Pool:
    """Uncorrected sounds with the base model's stored calibrated vectors (a hash-ordered, random-like sample)."""
    with catalog.read() as conn:
        found = rows(conn, UNCORRECTED + " ORDER BY p.hash LIMIT :n", {"m": model_id, "n": count})
    return _pool_of(catalog, found, n_labels)


def close_radius(catalog: Catalog, model_id: int) -> float:
    """The cosine similarity within which two of this model's embeddings count as close: the review
    order's definition (`close_similarity` over the catalog's embedding sample)."""
    with catalog.read() as conn:
        sample = embedding_sample(conn, model_id)
    if len(sample) < 2:
        return 1.0
    return close_similarity(unit_rows(decode_embeddings([r["embedding"] for r in sample])))


def close_to_overrides(catalog: Catalog, model_id: int, corrections: Corrections, radius: float, n_labels: int,
                       limit: int) -> Pool:
    """The uncorrected sounds of the catalog within `radius` of an override in its folder, whether or not the
    replay sample holds them: the sounds a correction carries over to. At most `limit`, the closest first,
    so that a library of near copies cannot make the fit as big as the catalog (the others still get
    the adapted model's results, and lie as close to the correction as the ones fitted)."""
    def page(last: str) -> list[dict[str, Any]]:
        with catalog.read() as conn:
            return rows(conn, UNCORRECTED + " AND p.hash > :last ORDER BY p.hash LIMIT :n",
                        {"m": model_id, "last": last, "n": PAGE})

    def closest(found: list[dict[str, Any]], folders: Folders, closeness: list[float]
                ) -> tuple[list[dict[str, Any]], Folders, list[float]]:
        keep = sorted(np.argsort(closeness, kind="stable")[::-1][:limit])
        return [found[i] for i in keep], [folders[i] for i in keep], [closeness[i] for i in keep]

    unit = unit_rows(corrections.embeddings)
    found: list[dict[str, Any]] = []
    folders: Folders = []  # each found sound's, read once, here
    closeness: list[float] = []
    for batch in pages_by_hash(page):
        vectors = decode_embeddings([r["embedding"] for r in batch])
        # Folders only for the few within the radius of any correction: reading every sound's would cost more.
        within = np.flatnonzero((unit_rows(vectors) @ unit.T).max(axis=1) >= radius)
        if not len(within):
            continue
        candidates = [batch[i] for i in within]
        candidate_folders = folders_of(catalog, [r["hash"] for r in candidates])
        similarity = carry_similarity(vectors[within], candidate_folders, corrections).max(axis=1)
        near = np.flatnonzero(similarity >= radius)
        found += [candidates[i] for i in near]
        folders += [candidate_folders[i] for i in near]
        closeness += similarity[near].tolist()
        if len(found) > 2 * limit:  # keep the closest `limit` so far: memory stays bounded too
            found, folders, closeness = closest(found, folders, closeness)
    found, folders, _ = closest(found, folders, closeness)
    return _pool_of(catalog, found, n_labels, folders)


def propagated(pool: Pool, corrections: Corrections, labels: list[str], radius: float) -> np.ndarray:
    """The pool's targets, with each sound a correction carries over to (`carry_similarity` at least
    `radius`) given that correction's label (the closest one's): the other velocity layers and copies of a
    sound, which the base model's own vector would otherwise pull back."""
    targets = pool.targets.copy()
    if not len(pool.hashes) or not len(corrections):
        return targets
    similarity = carry_similarity(pool.embeddings, pool.folders, corrections)
    near = similarity.max(axis=1) >= radius
    closest = similarity.argmax(axis=1)
    one_hot = np.eye(len(labels))[[labels.index(label) for label in corrections.labels]]
    targets[near] = one_hot[closest[near]]
    return targets


def examples_of(corrections: Corrections, pool: Pool, labels: list[str], radius: float) -> Examples:
    over = corrections.embeddings
    one_hot = np.eye(len(labels))[[labels.index(label) for label in corrections.labels]]
    if not len(pool.hashes):
        return Examples(over, one_hot, np.full(len(over), OVERRIDE_WEIGHT))
    return Examples(np.concatenate([over, pool.embeddings]),
                    np.concatenate([one_hot, propagated(pool, corrections, labels, radius)]),
                    np.concatenate([np.full(len(over), OVERRIDE_WEIGHT), np.ones(len(pool.hashes))]))


def cross_validate(start: Head, corrections: Corrections, pool: Pool, labels: list[str],
                   radius: float, mapping: dict[str, str] | None) -> dict[str, Any]:
    """Accuracy on each fold of the overrides held out, base model against adapted, fine and core (a
    held-out override's label carries over to no other sound)."""
    order = np.random.default_rng(0).permutation(len(corrections))
    folds = np.array_split(order, min(FOLDS, len(corrections)))
    truth, base_probs, adapted_probs = [], [], []
    for held in folds:
        head = fit_head(start, examples_of(corrections.subset(np.setdiff1d(order, held)), pool, labels, radius))
        truth += [corrections.labels[i] for i in held]
        base_probs.append(start.probabilities(corrections.embeddings[held]))
        adapted_probs.append(head.probabilities(corrections.embeddings[held]))
    core_truth = [canonical(label, mapping) for label in truth]

    def accuracies(probabilities: np.ndarray) -> dict[str, float]:
        fine = [labels[i] for i in probabilities.argmax(axis=1)]
        core = core_decisions(probabilities, labels, mapping).labels  # as the views file a sound
        return {"fine_accuracy": accuracy(truth, fine), "core_accuracy": accuracy(core_truth, core)}

    return {"folds": len(folds), "overrides": len(truth),
            "base": accuracies(np.concatenate(base_probs)), "adapted": accuracies(np.concatenate(adapted_probs))}


def adapted_models_folder(catalog: Catalog) -> Path:
    """Where adapted models go unless `--out` says otherwise: `models/` beside the catalog."""
    return catalog.path.parent / "models"


def default_out(catalog: Catalog, base_name: str) -> Path:
    """models/BASE-adapted-N.keras, N the first number whose name is free."""
    folder = adapted_models_folder(catalog)
    return first_free_bundle(folder / f"{base_name}-adapted-{number}.keras" for number in itertools.count(1))


def check_out(out: Path, base_path: Path) -> None:
    real = out.expanduser().resolve()
    if real.suffix != ".keras":
        raise DrumcatError(f"--out {out}: name the new model NAME.keras")
    if real.parent == models_dir().resolve() or real == base_path.resolve():
        raise DrumcatError(f"--out {out}: would overwrite a shipped or base model's files; choose another path")
    if any(p.exists() for p in bundle_files(real)):
        raise DrumcatError(f"--out {out}: a model is there already; choose another name")


def write_bundle_atomically(model: Any, card: ModelCard, out: Path) -> ModelCard:
    """Save into a hidden folder beside `out`, then move the export and weights in and the card last: an
    interrupted adapt leaves no bundle (a bundle without its card is not loadable), and what a killed one
    moved in is taken back by the next (`remove_abandoned_file_writes`)."""
    try:
        with files_staged_beside(out, "adapt") as staging:
            card = save_bundle(model, card, staging / out.name)
            written = [p for p in bundle_files(staging / out.name) if p.exists()]  # no export: runs on Keras
            move_in(staging, [(p.name, out.parent / p.name) for p in written])
    except FileExistsError:  # another run wrote a model under this name since check_out; its files are kept
        raise DrumcatError(f"--out {out}: another run wrote a model under this name meanwhile; run adapt again "
                           "(without --out it picks the next free name) or choose another name") from None
    return card


def predict_stored(catalog: Catalog, model_id: int, base_id: int, head: Head, labels: list[str]) -> int:
    """The adapted model's results for every sound the base model embedded, from the stored embeddings
    (its network up to the embedding is the base model's), so the views can use it without `infer`."""
    def page(last: str) -> list[dict[str, Any]]:
        with catalog.read() as conn:
            return rows(conn, """SELECT hash, embedding FROM predictions WHERE model_id = :b AND hash > :last
                AND embedding IS NOT NULL ORDER BY hash LIMIT :n""", {"b": base_id, "last": last, "n": PAGE})

    run_id, _ = start_run(catalog, model_id, 0, {"from": f"stored embeddings of model {base_id}"})
    written = 0
    for batch in pages_by_hash(page):
        embeddings = decode_embeddings([r["embedding"] for r in batch])
        probabilities = head.probabilities(embeddings.astype(np.float64)).astype(np.float32)
        write_results(catalog, model_id, run_id, labels, [r["hash"] for r in batch], probabilities, embeddings, [])
        written += len(batch)
    end_run(catalog, run_id, "finished")
    return written


def adapt(
    catalog: Catalog, *, out: Path | None = None, base: str | None = None, steps: int = STEPS,
    allow_new_labels: bool = False, use: bool = False, mapping: dict[str, str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> AdaptReport:
    """Fit, cross-validate, write and register an adapted model from the catalog's overrides."""
    import time

    started = time.perf_counter()
    stage = on_stage or (lambda _: None)
    base_row = base_model_row(catalog, base)
    bundle = load_bundle(Path(base_row["path"]), lite=False)
    # a killed adapt's half-moved bundle is taken back first, so its name is free again
    remove_abandoned_file_writes(Path(out).parent if out else adapted_models_folder(catalog), "adapt")
    out = Path(out) if out else default_out(catalog, bundle.name)
    check_out(out, bundle.path)
    labels = list(bundle.card.labels)
    with catalog.read() as conn:
        override_labels = {r["label"] for r in rows(conn, "SELECT DISTINCT label FROM overrides")}
    new = sorted(override_labels - set(labels) - {MISC})
    if new and not allow_new_labels:
        raise DrumcatError(f"override label {new[0]!r} is not one of {bundle.name}'s classes; pass "
                           "--allow-new-labels to add it as a new class, or change the override")
    labels += new
    skipped: Counter = Counter()
    stage("reading the overrides")
    hashes, over, over_labels = override_examples(catalog, bundle, base_row["id"], labels, skipped)
    if len(over) < MIN_OVERRIDES:
        reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.items())
        raise DrumcatError(f"adapt needs at least {MIN_OVERRIDES} usable overrides, this catalog has {len(over)}"
                           f"{f' ({reasons}: skipped)' if reasons else ''}; correct more sounds first "
                           "(the review page, or `drumcat override`)")
    corrections = Corrections(over, over_labels, folders_of(catalog, hashes))
    replay_count = max(MIN_REPLAY, REPLAY_PER_OVERRIDE * len(over))
    radius = close_radius(catalog, base_row["id"])
    replay = replay_examples(catalog, base_row["id"], replay_count, len(labels))
    near = close_to_overrides(catalog, base_row["id"], corrections, radius, len(labels), limit=replay_count)
    pool = replay.merged(near)
    start = base_head(bundle, labels)
    stage("cross-validating on the overrides")
    validation = cross_validate(start, corrections, pool, labels, radius, mapping)
    stage("fitting on every override")
    head = fit_head(start, examples_of(corrections, pool, labels, radius), steps=steps)
    card = ModelCard(
        name=out.stem, version="1", labels=labels, features=bundle.card.features, weights_sha256="",
        temperature=1.0, embedding_layer=embedding_tensor_layer(bundle.keras_model, bundle.card),
        created_at=utc_now(),
        training={
            "adapted_from": {"name": bundle.name, "card_hash": base_row["card_hash"],
                             "weights_sha256": bundle.card.weights_sha256, "path": str(bundle.path)},
            "overrides_used": dict(sorted(Counter(over_labels).items())),
            "overrides_skipped": dict(skipped), "replay_sounds": len(pool.hashes),
            "close_to_a_correction": {"sounds": len(near.hashes), "cosine_similarity_at_least": round(radius, 4),
                                      "in_its_folder": True},
            "new_labels": new,
            "litert_weights": bundle.card.lite_weights,  # the base's: its stored embeddings came from that export
            "recipe": f"the base network up to its embedding, frozen; a new softmax output layer started from the "
                      f"base one (temperature {bundle.card.temperature:g} folded in), fitted by full-batch Adam "
                      f"({steps} steps) on the overrides (weight {OVERRIDE_WEIGHT:g} each) and a replay sample of "
                      f"this catalog's other sounds with the base model's calibrated vectors as targets, except "
                      f"that every sound within the close radius of a correction and in its folder takes its label; "
                      f"with an L2 pull ({L2_TO_BASE:g}) toward the base layer",
        },
        metrics={"cross_validation": validation},
    )
    stage("writing the model and its LiteRT export")
    card = write_bundle_atomically(adapted_keras_model(bundle, head), card, out)
    model_id = register_model(catalog, card, out.resolve())
    stage("classifying the catalog from the stored embeddings")
    predict_stored(catalog, model_id, base_row["id"], head, labels)
    if use:
        set_active_model(catalog, model_id)
    return AdaptReport(out, bundle.name, model_id, dict(sorted(Counter(over_labels).items())), dict(skipped),
                       len(pool.hashes), validation, use, round(time.perf_counter() - started, 1), new,
                       len(near.hashes))

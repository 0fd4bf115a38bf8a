"""`drumcat infer`: classify every unique sound in the catalog that the model has no result for yet.

Worker processes decode and compute features (the CPU-heavy part); the main process feeds the model
large batches and commits each batch in one transaction, so an interrupted run loses at most one batch
and a rerun continues where it stopped. Duplicates share a content hash and are inferred once.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection

from drumcat.audio import AudioReadError, decode, resample
from drumcat.catalog import Catalog, execute_many, rows, utc_now
from drumcat.features import FeatureRecipe, compute_features, prepare_clips
from drumcat.models import ModelBundle, ModelCard, calibrated, read_checked_lite
from drumcat.rules import set_setting
from drumcat.runtime import LiteRuntime
from drumcat.workers import (
    keep_freed_memory,
    pool_context,
    silence_native_stderr,
    single_threaded_math_in_children,
    worker_count,
)

CHUNK = 64  # files per worker task: one model call each (4% faster than 32; no gain beyond)
_DECODE_MARGIN_S = 0.05  # read a little past the clip so resampling has context at its end


@dataclass
class InferSummary:
    model: str
    run_id: int
    model_id: int
    planned: int = 0
    predicted: int = 0
    failed: int = 0
    already_done: int = 0
    status: str = "running"
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# --- worker side -------------------------------------------------------------------------------------


def featurize(items: list[tuple[str, str]], recipe: FeatureRecipe) -> tuple[list[str], np.ndarray, list[tuple]]:
    """Decode and compute features for (hash, path) items. Returns hashes, features, and (hash, path, error)."""
    hashes, clips, errors = [], [], []
    for digest, path in items:
        try:
            samples = decode(path, recipe.sample_rate, max_seconds=recipe.clip_seconds + _DECODE_MARGIN_S)
        except (AudioReadError, OSError) as exc:
            errors.append((digest, path, str(exc) or type(exc).__name__))
            continue
        hashes.append(digest)
        clips.append(samples)  # prepare_clips trims or pads it to the clip length
    if not clips:
        return hashes, np.zeros((0, *recipe.input_shape), dtype=np.float32), errors
    return hashes, compute_features(prepare_clips(clips, recipe), recipe), errors


@dataclass
class Chunk:
    """What a worker makes of a chunk of (hash, path) items: the model's outputs when the worker runs the
    model (LiteRT), else the features for the main process to run it on (Keras)."""

    hashes: list[str]
    errors: list[tuple]
    features: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    embeddings: np.ndarray | None = None


@dataclass
class ChunkProcessor:
    """Decode, features and (when it has a LiteRT model) the model itself, for one chunk of items.
    Runs in each worker process; one thread, as the workers are already one per core."""

    recipe: FeatureRecipe
    lite_path: Path | None = None
    lite_sha256: str | None = None
    temperature: float = 1.0

    @classmethod
    def for_bundle(cls, bundle: ModelBundle) -> ChunkProcessor:
        card = bundle.card
        return cls(card.features, bundle.lite_path, card.litert_sha256, card.temperature)

    @cached_property
    def runtime(self) -> LiteRuntime | None:
        """Loaded on first use, in the process that uses it (50 ms), from bytes checked against the card's
        hash again: a worker runs exactly the model the parent checked, or fails."""
        if self.lite_path is None or self.lite_sha256 is None:
            return None
        return LiteRuntime(read_checked_lite(self.lite_path, self.lite_sha256), self.lite_path, threads=1)

    def warm_up(self) -> None:
        """Import what the work needs and build its caches (filterbank, window, resampler) on one silent
        clip. Called in the parent before forking, so each worker starts with them instead of spending
        its first 0.2 s importing scipy.fft and soxr."""
        resample(np.zeros(64, dtype=np.float32), 44_100, self.recipe.sample_rate)
        compute_features(prepare_clips([np.zeros(1, dtype=np.float32)], self.recipe), self.recipe)

    def __call__(self, items: list[tuple[str, str]]) -> Chunk:
        hashes, features, errors = featurize(items, self.recipe)
        if self.runtime is None:
            return Chunk(hashes, errors, features=features)
        if not hashes:
            return Chunk(hashes, errors)
        probabilities, embeddings = calibrated(*self.runtime.run(features), self.temperature, self.runtime.where)
        return Chunk(hashes, errors, probabilities=probabilities, embeddings=embeddings)


_worker_processor: ChunkProcessor | None = None


def _init_worker(processor: ChunkProcessor) -> None:
    global _worker_processor
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits infer's handler; the pool ends it
    silence_native_stderr()
    keep_freed_memory()
    os.nice(5)  # the parent's model loading and writing come first; workers take the cycles left over
    gc.freeze()  # what start-up allocated is long-lived: the collector need not walk it again per chunk
    _worker_processor = processor


def _process_in_worker(items: list[tuple[str, str]]) -> Chunk:
    assert _worker_processor is not None
    return _worker_processor(items)


# Files decoded ahead of the model: enough to keep the workers busy while a Keras model loads (a few
# seconds), small enough to bound memory (4,096 log-mel patches of 64 x 87 are 90 MB).
MAX_FILES_IN_FLIGHT = 4096


class WorkerPipeline:
    """Chunks processed by worker processes from the moment the pipeline is entered, yielded in order of
    submission, with at most MAX_FILES_IN_FLIGHT files in flight."""

    def __init__(self, items: list[tuple[str, str]], processor: ChunkProcessor, workers: int) -> None:
        self.chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
        self.processor = processor
        self.workers = workers if len(self.chunks) > 1 else 1
        self.pool: Any = None

    def __enter__(self) -> WorkerPipeline:
        if self.workers > 1:
            # fork when safe (a LiteRT bundle); spawn while a Keras model loads in a thread
            context = pool_context()
            if context.get_start_method() == "fork":
                self.processor.warm_up()
            with single_threaded_math_in_children():
                self.pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self.processor,))
            self.pending: deque = deque()
            self.remaining = iter(self.chunks)
            in_flight = max(self.workers * 3, MAX_FILES_IN_FLIGHT // CHUNK)
            for chunk in self.remaining:
                self.pending.append(self.pool.apply_async(_process_in_worker, (chunk,)))
                if len(self.pending) >= in_flight:
                    break
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def __iter__(self) -> Iterator[Chunk]:
        if self.pool is None:
            for chunk in self.chunks:
                yield self.processor(chunk)
            return
        while self.pending:
            yield self.pending.popleft().get()
            next_chunk = next(self.remaining, None)
            if next_chunk is not None:
                self.pending.append(self.pool.apply_async(_process_in_worker, (next_chunk,)))


# --- catalog side ------------------------------------------------------------------------------------


def register_model(catalog: Catalog, bundle: ModelBundle) -> int:
    card = bundle.card
    with catalog.connect() as conn:
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO models (name, card_hash, path, labels, card, added_at) VALUES (?,?,?,?,?,?)",
            (card.name, card.card_hash(), str(bundle.path), json.dumps(card.labels), card.to_json(), utc_now()),
        )
        # A card may bring classes the catalog does not know: they map to misc until the user says otherwise.
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO classes (name) SELECT value FROM json_each(?)", (json.dumps(card.labels),))
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO canonical_map (fine, canonical) SELECT value, 'misc' FROM json_each(?)",
            (json.dumps(card.labels),))
        model_id = _model_id(conn, card)
        assert model_id is not None  # inserted just above, or there already
        return model_id


def registered_model_id(catalog: Catalog, card: ModelCard) -> int | None:
    """The catalog's id for this exact card, or None if the model never ran here (nothing is written)."""
    with catalog.read() as conn:
        return _model_id(conn, card)


def _model_id(conn: Connection, card: ModelCard) -> int | None:
    return conn.exec_driver_sql("SELECT id FROM models WHERE card_hash=?", (card.card_hash(),)).scalar()


def pending_sounds(catalog: Catalog, model_id: int | None) -> list[tuple[str, str]]:
    """(hash, path) for each present, readable sound without a result or recorded error for the model."""
    with catalog.read() as conn:
        return [
            (r["hash"], r["path"])
            for r in rows(conn, """
                SELECT f.hash, min(f.path) AS path FROM files f
                WHERE f.missing = 0 AND f.error IS NULL AND f.hash IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.model_id = :m AND p.hash = f.hash)
                  AND NOT EXISTS (SELECT 1 FROM inference_errors e WHERE e.model_id = :m AND e.hash = f.hash)
                GROUP BY f.hash ORDER BY min(f.path)""", {"m": model_id})
        ]


def write_results(
    catalog: Catalog, model_id: int, run_id: int, labels: list[str], hashes: list[str],
    probabilities: np.ndarray, embeddings: np.ndarray, errors: list[tuple],
) -> None:
    """Store one batch (top-1 and runner-up, the full probability vector, the embedding, the errors) in one
    transaction, so a run interrupted at any point has either all of a batch or none of it."""
    now = utc_now()
    order = np.argsort(-probabilities, axis=1)
    vectors = probabilities.tolist()  # Python floats in one call: per-element float() is the slow part
    as_json = probability_vector_format(len(labels))
    prediction_rows = []
    for row, digest in enumerate(hashes):
        first, second = order[row, 0], order[row, 1] if len(labels) > 1 else None
        prediction_rows.append({
            "m": model_id, "h": digest, "r": run_id, "label": labels[first],
            "conf": vectors[row][first],
            "label2": labels[second] if second is not None else None,
            "conf2": vectors[row][second] if second is not None else None,
            "emb": embeddings[row].astype("<f2").tobytes(), "now": now,
            "probs": as_json % tuple(vectors[row]),
        })
    error_rows = [{"m": model_id, "h": h, "path": p, "e": e, "r": run_id, "now": now} for h, p, e in errors]
    with catalog.connect() as conn:
        execute_many(conn, """INSERT OR REPLACE INTO predictions (model_id, hash, run_id, label, confidence,
            second_label, second_confidence, embedding, predicted_at, probabilities)
            VALUES (:m, :h, :r, :label, :conf, :label2, :conf2, :emb, :now, :probs)""", prediction_rows)
        execute_many(conn, """INSERT OR REPLACE INTO inference_errors
            VALUES (:m, :h, :path, :e, :r, :now)""", error_rows)
        conn.exec_driver_sql(
            "UPDATE inference_runs SET predicted = predicted + ?, failed = failed + ? WHERE id = ?",
            (len(hashes), len(errors), run_id),
        )


def probability_vector_format(n_labels: int) -> str:
    """A %-template that writes n probabilities as a JSON array (predictions.probabilities). %.9g keeps
    every float32 exactly, and one template is 2 to 3 times faster than json.dumps or numpy's formatting."""
    return "[" + ",".join(["%.9g"] * n_labels) + "]"


class _Terminated(Exception):
    """SIGTERM during a run: unwind like Ctrl-C so the run is marked interrupted."""


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise _Terminated()


def infer(
    catalog: Catalog,
    bundle: ModelBundle,
    *,
    batch_size: int = 256,
    workers: int = 0,
    limit: int | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> InferSummary:
    """Run `bundle` over every sound it has no result for; commit batch by batch. Safe to interrupt.

    The decode workers start before anything else, so a bundle still loading in the background
    (`load_bundle(..., background=True)`) loads while they work. The catalog is not written until the
    model has loaded and passed its checks: a bad model leaves no run behind."""
    items = pending_sounds(catalog, registered_model_id(catalog, bundle.card))
    if limit is not None:
        items = items[:limit]
    workers = worker_count(workers)
    # Only the main thread may set signal handlers; a library caller on another thread keeps its own.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        with WorkerPipeline(items, ChunkProcessor.for_bundle(bundle), workers) as chunks:
            bundle.ready()
            summary = _start_run(catalog, bundle, len(items),
                                 {"batch_size": batch_size, "workers": workers, "limit": limit})
            if on_total:
                on_total(len(items))
            _finish_run(catalog, summary, lambda: _run_batches(
                catalog, bundle, summary, chunks, batch_size, on_progress))
    except _Terminated:
        raise KeyboardInterrupt from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
    return summary


def _start_run(catalog: Catalog, bundle: ModelBundle, planned: int, config: dict[str, Any]) -> InferSummary:
    model_id = register_model(catalog, bundle)
    _set_active_model(catalog, model_id)
    with catalog.connect() as conn:
        conn.exec_driver_sql("UPDATE inference_runs SET status='interrupted' WHERE status='running'")
        run_id = conn.exec_driver_sql(
            "INSERT INTO inference_runs (model_id, started_at, config, planned) VALUES (?,?,?,?) RETURNING id",
            (model_id, utc_now(), json.dumps(config), planned),
        ).scalar_one()
        done = conn.exec_driver_sql("SELECT count(*) FROM predictions WHERE model_id=?", (model_id,)).scalar_one()
    return InferSummary(bundle.name, run_id, model_id, planned=planned, already_done=done)


def _finish_run(catalog: Catalog, summary: InferSummary, work: Callable[[], None]) -> None:
    """Do the run's work and record how it ended: finished, interrupted (Ctrl-C, SIGTERM) or failed."""
    try:
        work()
        summary.status = "finished"
    except (KeyboardInterrupt, _Terminated):
        summary.status = "interrupted"
        raise
    except Exception:
        summary.status = "failed"
        raise
    finally:
        with catalog.connect() as conn:
            conn.exec_driver_sql("UPDATE inference_runs SET status=?, finished_at=? WHERE id=?",
                                 (summary.status, utc_now(), summary.run_id))


def _run_batches(
    catalog: Catalog, bundle: ModelBundle, summary: InferSummary, chunks: WorkerPipeline, batch_size: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Predict batch after batch (unless the workers ran the model already); a writer thread commits each
    batch while the next is prepared (SQLite releases the GIL). One write is outstanding at most, and
    leaving this function (also by Ctrl-C) waits for it, so what was predicted is committed or not at all."""
    labels = bundle.card.labels

    def commit(batch: Chunk) -> None:
        write_results(catalog, summary.model_id, summary.run_id, labels, batch.hashes, batch.probabilities,
                      batch.embeddings, batch.errors)

    def account(batch: Chunk) -> None:
        summary.predicted += len(batch.hashes)
        summary.failed += len(batch.errors)
        summary.errors.extend({"hash": h, "path": p, "error": e} for h, p, e in batch.errors)
        if on_progress:
            on_progress(len(batch.hashes) + len(batch.errors))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drumcat-writer") as writer:
        writing: tuple[Future, Chunk] | None = None
        for batch in _batches(chunks, batch_size, len(labels)):
            if batch.features is not None:
                batch.probabilities, batch.embeddings = bundle.predict(batch.features)
            if writing:
                writing[0].result()  # raises what the write raised
                account(writing[1])
            writing = (writer.submit(commit, batch), batch)
        if writing:
            writing[0].result()
            account(writing[1])


def _batches(chunks: WorkerPipeline, batch_size: int, n_labels: int) -> Iterator[Chunk]:
    """Regroup the workers' chunks into batches of at least `batch_size` sounds, one transaction each (the
    last may be smaller; a batch of only failed files still yields, so their errors are recorded)."""
    group: list[Chunk] = []
    for chunk in chunks:
        group.append(chunk)
        if sum(len(c.hashes) for c in group) >= batch_size:
            yield _merged(group, n_labels)
            group = []
    if any(c.hashes or c.errors for c in group):
        yield _merged(group, n_labels)


def _merged(group: list[Chunk], n_labels: int) -> Chunk:
    """One chunk of many: the model's outputs when the workers ran it, else the features to run it on."""
    hashes = [h for chunk in group for h in chunk.hashes]
    errors = [e for chunk in group for e in chunk.errors]
    if any(chunk.probabilities is not None for chunk in group):
        return Chunk(hashes, errors,
                     probabilities=np.concatenate([c.probabilities for c in group if c.probabilities is not None]),
                     embeddings=np.concatenate([c.embeddings for c in group if c.embeddings is not None]))
    empty = np.zeros((0, n_labels), dtype=np.float32)
    features = [c.features for c in group if c.features is not None]
    return Chunk(hashes, errors, features=np.concatenate(features) if hashes else None,
                 probabilities=empty, embeddings=empty)


def _set_active_model(catalog: Catalog, model_id: int) -> None:
    """The views classify with the active model; the model a user last ran becomes it."""
    with catalog.connect() as conn:
        set_setting(conn, "active_model", str(model_id))

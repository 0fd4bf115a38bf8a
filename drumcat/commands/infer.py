"""`drumcat infer`: the run's lifecycle. Classify every unique sound in the catalog that the model has no
result for yet.

Worker processes (drumcat/workers.py) run the feature pipeline (drumcat/model/pipeline.py); the main
process commits each batch in one transaction (drumcat/storage/results.py), so an interrupted run loses at
most one batch and a rerun continues where it stopped. Duplicates share a content hash and are inferred once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drumcat.commands.review import update_review_density
from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelBundle
from drumcat.model.pipeline import Chunk, ChunkProcessor
from drumcat.storage.catalog import Catalog
from drumcat.storage.results import (
    activate_if_first,
    end_run,
    is_active_model,
    pending_sounds,
    refresh_ensembles_with,
    register_model,
    registered_model_id,
    set_active_model,
    start_run,
    write_results,
)
from drumcat.workers import WorkerPipeline, check_worker_count, worker_count


@dataclass
class InferSummary:
    model: str
    run_id: int
    model_id: int
    planned: int = 0
    predicted: int = 0
    failed: int = 0
    already_done: int = 0
    active: bool = False
    """Whether the views classify with this model (the catalog's first, or `use`)."""
    status: str = "running"
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


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
    use: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> InferSummary:
    """Run `bundle` over every sound it has no result for; commit batch by batch. Safe to interrupt.

    The decode workers start before anything else, so a bundle still loading in the background
    (`load_bundle(..., background=True)`) loads while they work. The catalog is not written until the
    model has loaded and passed its checks: a bad model leaves no run behind. The views switch to this
    model only if it is the catalog's first or `use` is set (`drumcat model use` switches later).
    `on_total` hears the count once the workers run, so a progress bar that starts then (`console.progress_bar`,
    lazy) does not make them spawn instead of fork."""
    check_run_options(batch_size=batch_size, workers=workers, limit=limit)
    items = pending_sounds(catalog, registered_model_id(catalog, bundle.card))
    if limit is not None:
        items = items[:limit]
    workers = worker_count(workers)
    # Only the main thread may set signal handlers; a library caller on another thread keeps its own.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        processor = ChunkProcessor.for_bundle(bundle)
        with WorkerPipeline(items, processor, workers, crashed=Chunk.with_crashed) as chunks:
            bundle.ready()
            summary = _start_run(catalog, bundle, len(items),
                                 {"batch_size": batch_size, "workers": workers, "limit": limit}, use)
            if on_total:
                on_total(len(items))
            _finish_run(catalog, summary, lambda: _run_batches(
                catalog, bundle, summary, chunks, batch_size, on_progress))
        update_review_density(catalog, summary.model_id)  # the review order for the new sounds
        refresh_ensembles_with(catalog, summary.model_id)
        fingerprint_if_near_dedup(catalog, workers)
    except _Terminated:
        raise KeyboardInterrupt from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
    return summary


def fingerprint_if_near_dedup(catalog: Catalog, workers: int) -> None:
    """With dedup 'near', the new sounds' near-duplicate fingerprints are made now (a second worker pass,
    0.2 core-ms a sound); otherwise they wait until near-duplicates are asked for (drumcat duplicates)."""
    with catalog.read() as conn:
        near = conn.exec_driver_sql("SELECT dedup FROM rules").scalar() == "near"
    if near:
        from drumcat.commands.near_duplicates import update_fingerprints

        update_fingerprints(catalog, workers=workers)


def check_run_options(*, batch_size: int, workers: int, limit: int | None) -> None:
    if batch_size < 1:
        raise DrumcatError(f"--batch-size {batch_size}: a batch holds at least one sound")
    check_worker_count(workers)
    if limit is not None and limit < 0:
        raise DrumcatError(f"--limit {limit}: use a count of sounds, 0 or more")


def _start_run(catalog: Catalog, bundle: ModelBundle, planned: int, config: dict[str, Any],
               use: bool) -> InferSummary:
    model_id = register_model(catalog, bundle.card, bundle.path)
    if use:
        set_active_model(catalog, model_id)
    activate_if_first(catalog, model_id)
    active = is_active_model(catalog, model_id)  # also on a rerun: the views already use it
    run_id, done = start_run(catalog, model_id, planned, config)
    return InferSummary(bundle.name, run_id, model_id, planned=planned, already_done=done, active=active)


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
        end_run(catalog, summary.run_id, summary.status)


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

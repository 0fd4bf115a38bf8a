"""Worker processes: how many, how each one is set up for long runs of numeric work, and the pipeline
that feeds them chunks of work and survives one that dies.

`scan`, `infer` and `duplicates` run their CPU-heavy part (decoding; features, the model, fingerprints)
in a pool of worker processes, one per core, through `WorkerPipeline`. What a chunk's work is, is the
caller's: a processor object, run in each worker.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol

from drumcat.errors import DrumcatError

# glibc mallopt parameters (malloc.h) and the values keep_freed_memory gives them
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_SETTINGS = {
    _M_MMAP_THRESHOLD: 32 * 1024 * 1024,  # glibc's maximum: blocks below it come from the heap
    _M_TRIM_THRESHOLD: 256 * 1024 * 1024,  # free heap kept before any is returned to the kernel
    _M_TOP_PAD: 64 * 1024 * 1024,  # the heap grows in large steps
}


CHUNK = 64  # items per worker task: one model call each in infer (4% faster than 32; no gain beyond)
# Items sent ahead of the caller: enough to keep the workers busy while a Keras model loads (a few
# seconds), small enough to bound memory (4,096 log-mel patches of 64 x 87 are 90 MB).
MAX_FILES_IN_FLIGHT = 4096
STOP_GRACE_S = 10.0  # seconds the workers get to finish their chunks when the pipeline stops early
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def check_worker_count(configured: int) -> None:
    """Refuse a negative count before a command writes anything: 0 means one per core."""
    if configured < 0:
        raise DrumcatError(f"--workers {configured}: use 0 (one per core) or a positive count")


def worker_count(configured: int) -> int:
    """The configured number of workers, or one per core when it is 0."""
    check_worker_count(configured)
    return configured if configured > 0 else (os.cpu_count() or 1)


def pool_context() -> BaseContext:
    """fork when no other thread could hold a lock at the fork, else spawn.

    fork starts a worker at once, with every module already imported (spawn costs each worker a new
    interpreter and 0.3 s of imports, and re-runs the main module of a program without an
    `if __name__ == "__main__"` guard). It is only safe with no other thread alive: a thread holding a lock
    at fork time leaves it locked in the child forever. Native threads count too (TensorFlow's, a
    runtime's thread pool), so they are counted from /proc, not from the threading module; where /proc is
    missing, spawn. OpenBLAS's own threads are the exception: it stops them before every fork.
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return multiprocessing.get_context("spawn")
    others = len(os.listdir(tasks)) - 1
    # OpenBLAS's threads are native, never Python's: with a Python thread alive, spawn whatever the count.
    fork_safe = others == 0 or (threading.active_count() == 1 and others == _openblas_threads())
    return multiprocessing.get_context("fork" if fork_safe else "spawn")


def _openblas_threads() -> int:
    """The threads OpenBLAS's thread pools run beside the calling one. A pthreads build of OpenBLAS stops
    them before every fork (it registers a pthread_atfork handler) and starts them again when next used,
    so they do not make a fork unsafe: a Python program that loaded numpy as usual has them, and would
    otherwise spawn its workers."""
    from threadpoolctl import threadpool_info

    return sum(pool["num_threads"] - 1 for pool in threadpool_info()
               if pool["internal_api"] == "openblas" and pool.get("threading_layer") == "pthreads")


@contextmanager
def single_threaded_math_in_children() -> Iterator[None]:
    """For processes started inside: workers are already one per core, and a BLAS thread pool in each
    would only fight the others for CPU. A spawned worker reads these variables as it starts; a forked
    one has the parent's BLAS already loaded and needs `one_blas_thread_here` as well."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def one_blas_thread_here() -> None:
    """Workers only: one BLAS thread in this process, whatever the parent's BLAS was set to.

    A forked worker inherits the parent's OpenBLAS, configured when numpy loaded (one thread per core
    unless a variable said otherwise), and the environment set for children comes too late for it.
    The parent can still be single-threaded at fork time, because OpenBLAS stops its threads whenever
    the process forks (a `scan` in the same process does) and restarts them on its next call. Each
    worker then ran two spinning BLAS threads on its core: a library caller's `infer` went 3-12x slower
    (README, Performance). threadpoolctl sets the limit through the library's own call."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def silence_worker_output() -> None:
    """Workers only: nothing a worker prints reaches the terminal; the catalog records errors.

    Decoders in C (mpg123) print notes on garbage input, so file descriptor 2 goes to /dev/null. Python's
    streams go back to the interpreter's own: a worker forked while the parent's progress bar was drawn
    inherits rich's stand-ins for sys.stdout and sys.stderr, which print through the bar's locks, and a
    lock its redraw thread held at the fork stays held in the worker, so the first warning a worker
    printed would hang it for good (tests/test_workers.py)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """For the work inside: what native code writes to file descriptor 2 goes nowhere, while Python's
    sys.stderr (a warning, the progress bar's redraws) still reaches the terminal through a copy of it.

    For a pipeline too small for workers, which runs its work in this process: mpg123 prints notes on a
    damaged MP3 ("Note: Illegal Audio-MPEG-Header ..."), that in a worker go to /dev/null
    (`silence_worker_output`), and the catalog records the file's error either way. Only for the main
    thread's work: another thread writing to descriptor 2 meanwhile would be silenced too. Where
    descriptor 2 is not open, nothing changes."""
    try:
        terminal = os.dup(2)
    except OSError:
        yield
        return
    stream = sys.stderr
    stream.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with open(terminal, "w", buffering=1, closefd=False) as to_terminal:
            sys.stderr = to_terminal
            os.dup2(devnull, 2)
            try:
                yield
            finally:
                os.dup2(terminal, 2)
                sys.stderr = stream
    finally:
        os.close(devnull)
        os.close(terminal)


def keep_freed_memory() -> None:
    """Workers only: let glibc reuse freed memory instead of handing it back to the kernel.

    A worker allocates and frees the same few megabytes of arrays per chunk (frames, spectra). By
    default glibc serves each from fresh mmap'd pages and unmaps them on free, so every chunk pays
    page faults to have the kernel zero the same memory again: a quarter of a worker's time in infer.
    Serving them from a heap that keeps up to 256 MB free removes that. No-op where libc is not glibc.
    """
    try:
        # The symbols this process has loaded, libc's among them: ctypes.util.find_library("c") would find
        # the same library by running `ldconfig -p` (or a compiler, where there is no ldconfig) in every worker.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    for parameter, value in _MALLOC_SETTINGS.items():
        mallopt(parameter, value)


class Processor(Protocol):
    """A chunk's work, run in a worker process: `warm_up` once in the parent before workers fork from it
    (imports and caches each worker would otherwise build again), then a call per chunk of items."""

    def warm_up(self) -> None: ...

    def __call__(self, items: list[Any]) -> Any: ...


_worker_processor: Processor | None = None  # the pipeline's processor, in a worker


def _init_worker(processor: Processor) -> None:
    global _worker_processor
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits infer's handler; the pool ends it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends the workers
    silence_worker_output()
    keep_freed_memory()
    one_blas_thread_here()
    os.nice(5)  # the parent's model loading and writing come first; workers take the cycles left over
    gc.freeze()  # what start-up allocated is long-lived: the collector need not walk it again per chunk
    _worker_processor = processor


def _process_in_worker(items: list[Any]) -> Any:
    assert _worker_processor is not None
    return _worker_processor(items)


class WorkerPipeline:
    """Chunks processed by worker processes from the moment the pipeline is entered, yielded in order of
    submission, with at most MAX_FILES_IN_FLIGHT files in flight.

    A worker that dies (a decoder in C crashing on a malformed file, the kernel's out-of-memory killer)
    takes the chunks in flight with it. multiprocessing.Pool then waited for them forever; a
    ProcessPoolExecutor reports it (BrokenProcessPool), and the pipeline starts a new pool, finds the files
    of the chunk that kill a worker, has `crashed` record them and carries on."""

    def __init__(self, items: list[Any], processor: Processor, workers: int, *,
                 crashed: Callable[[Any, list[Any]], Any], context: BaseContext | None = None) -> None:
        """`processor(items)` makes a chunk's result in a worker (pipeline.ChunkProcessor,
        near_duplicates.FingerprintProcessor, scan.FileReader), and `crashed(result, items)` adds the items
        that killed a worker to one (pipeline.Chunk.with_crashed, scan.FileReader.crashed). `context` fixes
        how workers start; by default `pool_context` decides."""
        self.chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
        self.processor = processor
        self.crashed = crashed
        self.workers = workers if len(self.chunks) > 1 else 1
        self.pool: ProcessPoolExecutor | None = None
        self.context = context
        self.pending: deque[tuple[list[Any], Future]] = deque()

    def __enter__(self) -> WorkerPipeline:
        if self.workers > 1:
            self.context = self.context or pool_context()
            if self.context.get_start_method() == "fork":
                self.processor.warm_up()  # once: every pool, also one started after a crash, forks from here
            self._start_pool()
            self.remaining = iter(self.chunks)
            in_flight = max(self.workers * 3, MAX_FILES_IN_FLIGHT // CHUNK)
            for chunk in self.remaining:
                self.pending.append(self._submitted(chunk))
                if len(self.pending) >= in_flight:
                    break
        return self

    def _start_pool(self) -> None:
        """Workers start as the pipeline decided when entered: fork when that is safe (a LiteRT bundle),
        spawn while a Keras model loads in a thread. A pool started again after a crash starts them the same
        way: the threads alive by then (infer's writer, the old pool's last ones) hold nothing a worker uses."""
        with single_threaded_math_in_children():
            self.pool = ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=_init_worker,
                                            initargs=(self.processor,))

    def _submitted(self, chunk: list[Any]) -> tuple[list[Any], Future]:
        assert self.pool is not None
        return chunk, self.pool.submit(_process_in_worker, chunk)

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self._stop_pool()

    def _stop_pool(self) -> None:
        """End the workers (Ctrl-C, an error, a broken pool): no chunk starts any more, and each worker
        finishes the one it holds, a fraction of a second, then exits; its result is dropped.

        A worker ended mid-chunk could be caught writing its result back (a result over the pipe's 64 KB,
        as infer's 70 KB are, is written in parts): the executor's thread then waited forever for the
        rest of the message, and this process with it. Only workers still busy after STOP_GRACE_S, stuck
        in one file, are ended, as a last resort."""
        assert self.pool is not None
        processes = list((getattr(self.pool, "_processes", None) or {}).values())  # the executor keeps them here
        manager = getattr(self.pool, "_executor_manager_thread", None)  # shutdown forgets it
        self.pool.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            manager.join(STOP_GRACE_S)
            if manager.is_alive():
                for process in processes:
                    process.terminate()
                manager.join(STOP_GRACE_S)
        for process in processes:
            process.join(STOP_GRACE_S)
        self.pool = None

    def __iter__(self) -> Iterator[Any]:
        if self.pool is None:
            for chunk in self.chunks:
                with native_output_silenced():
                    done = self.processor(chunk)
                yield done
            return
        while self.pending:
            chunk, future = self.pending.popleft()
            try:
                done = future.result()
            except BrokenProcessPool:
                done = self._without_crashing_files(chunk)
            yield done
            next_chunk = next(self.remaining, None)
            if next_chunk is not None:
                self.pending.append(self._submitted(next_chunk))

    def _without_crashing_files(self, chunk: list[Any]) -> Any:
        """A worker died and the pool with it: every chunk in flight is lost, this one first. In a new pool,
        with nothing else in flight, run this chunk's files one by one to find the ones that kill a worker,
        then the others as one chunk; then send the lost chunks again (one of them may be the culprit: it
        comes here in its turn)."""
        lost = [other for other, _ in self.pending]
        self.pending.clear()
        self._restart_pool()
        crashing = []
        for item in chunk:
            try:
                self._submitted([item])[1].result()
            except BrokenProcessPool:
                crashing.append(item)
                self._restart_pool()
        rest = [item for item in chunk if item not in crashing]
        done = self._submitted(rest)[1].result()
        self.pending.extend(self._submitted(other) for other in lost)
        return self.crashed(done, crashing)

    def _restart_pool(self) -> None:
        self._stop_pool()
        self._start_pool()

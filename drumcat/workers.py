"""Worker processes: how many, and how each one is set up for long runs of numeric work.

`scan` and `infer` run their CPU-heavy part in a pool of worker processes, one per core.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from pathlib import Path

# glibc mallopt parameters (malloc.h) and the values keep_freed_memory gives them
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_SETTINGS = {
    _M_MMAP_THRESHOLD: 32 * 1024 * 1024,  # glibc's maximum: blocks below it come from the heap
    _M_TRIM_THRESHOLD: 256 * 1024 * 1024,  # free heap kept before any is returned to the kernel
    _M_TOP_PAD: 64 * 1024 * 1024,  # the heap grows in large steps
}


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_count(configured: int) -> int:
    """The configured number of workers, or one per core when it is 0."""
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

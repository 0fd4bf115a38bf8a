"""Worker process set-up: when infer may fork, and the allocator setting that keeps workers fast."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from drumcat.audio.synth import INSTRUMENTS, render, write_sample
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.storage.catalog import Catalog
from drumcat.workers import CHUNK, pool_context


def test_a_process_with_another_thread_spawns() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert pool_context().get_start_method() == "spawn"
    finally:
        stop.set()
        thread.join()


def test_a_single_threaded_process_forks() -> None:
    script = "from drumcat.workers import pool_context; print(pool_context().get_start_method())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={"OPENBLAS_NUM_THREADS": "1", "PATH": ""})
    assert result.stdout.strip() == "fork", result.stderr


def test_a_process_whose_other_threads_are_openblas_forks() -> None:
    """numpy loaded as a Python program loads it: OpenBLAS runs a thread pool, and stops it at each fork."""
    script = ("import os, numpy; numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
              "from drumcat.workers import pool_context; "
              "print(len(os.listdir('/proc/self/task')), pool_context().get_start_method())")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={"OPENBLAS_NUM_THREADS": "2", "PATH": ""})
    threads, method = result.stdout.split()
    assert int(threads) > 1 and method == "fork", result.stdout + result.stderr


UNGUARDED_PROGRAM = """
import sys
from drumcat.commands.infer import infer
from drumcat.model.bundle import load_bundle
from drumcat.storage.catalog import Catalog
summary = infer(Catalog(sys.argv[1]), load_bundle(), workers=2)
print(summary.predicted)
"""


def test_a_program_without_a_main_guard_infers_once(tmp_path: Path) -> None:
    """Spawned workers import the program's main module again, and one without an `if __name__ ==
    "__main__"` guard ran the whole inference again in each worker (three runs, three times the work)."""
    catalog = catalog_of_sounds(tmp_path)
    program = tmp_path / "program.py"
    program.write_text(UNGUARDED_PROGRAM)
    result = subprocess.run([sys.executable, str(program), str(catalog)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(2 * CHUNK + 1)], result.stdout
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("SELECT count(*) FROM inference_runs").fetchone() == (1,)


PAGE_FAULTS = """
import resource, sys
import numpy as np
from drumcat.audio.features import FeatureRecipe, compute_features, prepare_clips
from drumcat.workers import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
recipe = FeatureRecipe()
clips = list(np.random.default_rng(0).uniform(-1, 1, (32, recipe.clip_samples)).astype(np.float32))
compute_features(prepare_clips(clips, recipe), recipe)  # the heap grows once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # what an infer worker does per chunk of 32 files, after decoding them
    compute_features(prepare_clips(clips, recipe), recipe)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_stops_page_faults_on_reused_memory() -> None:
    faults = {}
    for mode in ("default", "keep"):
        result = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], capture_output=True, text=True,
                                timeout=60, env={"OPENBLAS_NUM_THREADS": "1", "PATH": ""})
        assert result.returncode == 0, result.stderr
        faults[mode] = int(result.stdout)
    assert faults["keep"] < faults["default"] / 10, faults


WORKER_BLAS_THREADS = """
import os
import threadpoolctl
from drumcat.model.pipeline import Chunk
from drumcat.workers import WorkerPipeline


class ReportBlasThreads:
    def warm_up(self) -> None:
        pass

    def __call__(self, items):
        info = threadpoolctl.threadpool_info()
        return Chunk([str(max(p["num_threads"] for p in info if p["user_api"] == "blas"))], [])


if __name__ == "__main__":
    import numpy  # OpenBLAS loads with the two threads the environment asks for
    child = os.fork()  # as a scan in the same process does: OpenBLAS stops its threads around a fork
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    with WorkerPipeline([("hash", "path")] * 256, ReportBlasThreads(), workers=2,
                        crashed=Chunk.with_crashed) as chunks:
        print(" ".join(sorted({chunk.hashes[0] for chunk in chunks})))
"""


def test_forked_workers_run_one_blas_thread_whatever_the_parent_has(tmp_path) -> None:
    """The parent is single-threaded at fork time but its OpenBLAS is set to two threads; without
    one_blas_thread_here each worker would run two (infer from Python after a scan was 3-12x slower)."""
    script = tmp_path / "probe.py"
    script.write_text(WORKER_BLAS_THREADS)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                            env={"OPENBLAS_NUM_THREADS": "2", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"], result.stdout


def catalog_of_sounds(tmp_path: Path) -> Path:
    """A scanned catalog of more sounds than one chunk holds, so that the pipeline uses worker processes."""
    path = tmp_path / "catalog.db"
    catalog = Catalog(path)
    for index in range(2 * CHUNK + 1):
        instrument = sorted(INSTRUMENTS)[index % len(INSTRUMENTS)]
        write_sample(tmp_path / "archive" / f"{instrument}{index}.wav", render(instrument, seed=index))
    scan(catalog, [tmp_path / "archive"], ScanConfig(workers=1))
    catalog.close()
    return path


IN_A_TERMINAL = """
import io, sys
from rich.console import Console
from drumcat import cli, console
from drumcat import workers
console.err = Console(file=io.StringIO(), force_terminal=True, width=120)  # stderr a terminal: the bar is drawn
chosen = []
decide = workers.pool_context
def recorded():
    context = decide()
    chosen.append(context.get_start_method())
    return context
workers.pool_context = recorded
sys.argv = ["drumcat", "--catalog", sys.argv[1], *sys.argv[2:]]
try:
    cli.main()
except SystemExit as exc:
    assert not exc.code, console.err.file.getvalue()
print(" ".join(chosen), "/", "drawn" if "files/s" in console.err.file.getvalue()
      or "sounds/s" in console.err.file.getvalue() else "not drawn")
"""


@pytest.mark.parametrize("command", [["infer"], ["duplicates"]])
def test_in_a_terminal_the_workers_fork_while_the_progress_bar_draws(tmp_path: Path, command: list[str]) -> None:
    """A progress bar redraws from a thread; with it alive, the workers would have to spawn (a fresh
    interpreter each). The bar starts once they run, so they fork, as they do in a pipe."""
    result = subprocess.run([sys.executable, "-c", IN_A_TERMINAL, str(catalog_of_sounds(tmp_path)), *command,
                             "--workers", "2"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["fork", "/", "drawn"], result.stdout + result.stderr


WARNING_UNDER_A_BAR = """
import multiprocessing, sys, threading
from rich.console import Console
from rich.progress import Progress
from drumcat.workers import silence_worker_output

def warn():
    print("a warning from a worker", file=sys.stderr, flush=True)
    return "printed"

with Progress(console=Console(file=sys.__stderr__, force_terminal=True)) as progress:
    held, release = threading.Event(), threading.Event()
    def redraw():  # the bar's redraw thread, caught holding its lock at the fork
        with progress.live._lock:
            held.set()
            release.wait()
    thread = threading.Thread(target=redraw)
    thread.start()
    held.wait()
    with multiprocessing.get_context("fork").Pool(1, initializer=silence_worker_output) as pool:
        result = pool.apply_async(warn)
        release.set()
        thread.join()
        try:
            print(result.get(timeout=20), file=sys.__stdout__)
        except multiprocessing.TimeoutError:
            print("hung", file=sys.__stdout__)
        pool.terminate()
"""


def test_a_worker_forked_under_a_progress_bar_can_print() -> None:
    """scan forks its workers while the bar is drawn; one that printed a warning through the bar's copied,
    held lock hung for good."""
    result = subprocess.run([sys.executable, "-c", WARNING_UNDER_A_BAR], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.stdout.strip() == "printed", result.stdout + result.stderr


NATIVE_AND_PYTHON_OUTPUT = """
import os, sys
from drumcat.workers import native_output_silenced
with native_output_silenced():
    os.write(2, b"from native code\\n")
    print("from Python", file=sys.stderr)
os.write(2, b"after\\n")
"""


def test_native_output_is_silenced_and_pythons_is_not() -> None:
    result = subprocess.run([sys.executable, "-c", NATIVE_AND_PYTHON_OUTPUT], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "from Python\nafter\n"


STOPPED_MID_RUN = """
import multiprocessing
import numpy as np
from drumcat.workers import WorkerPipeline

class LargeResults:
    def warm_up(self):
        pass
    def __call__(self, items):
        return np.ones(2_000_000, dtype=np.float32)  # 8 MB: a worker spends a while writing each back

for run in range(3):
    try:
        with WorkerPipeline(list(range(64 * 100)), LargeResults(), workers=2, crashed=lambda r, i: r) as chunks:
            for index, _ in enumerate(chunks):
                if index == 3:
                    raise RuntimeError("the consumer failed")  # as a full disk or Ctrl-C stops infer or scan
    except RuntimeError:
        pass
print(len(multiprocessing.active_children()))
"""


def test_a_pipeline_stopped_mid_run_ends_its_workers_and_returns() -> None:
    """Workers ended mid-chunk could be writing a result back; the executor then waited forever for the rest
    of it (every time with results this large), and a scan that filled its disk hung instead of exiting."""
    result = subprocess.run([sys.executable, "-c", STOPPED_MID_RUN], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]  # no worker left behind

"""Worker process set-up: when infer may fork, and the allocator setting that keeps workers fast."""

from __future__ import annotations

import subprocess
import sys
import threading

from drumcat.workers import pool_context


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

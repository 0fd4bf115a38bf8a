"""Inference benchmark, all on the same archive and model, in one run:

  (a) the reference design's pipeline: librosa.load + librosa features per file, model.predict per 32
  (b) a plain soundfile decode loop (the floor any pipeline pays)
  (c) `drumcat infer` (a fresh catalog each time; the scan before it is not timed)

    python bench/infer.py [--files 5000] [--reference-files 400] [--repeats 3]

Prints files/s (median of the repeats), the ratios, and the peak RSS of the whole `drumcat infer`
process tree. Targets: (c)/(a) >= 10, (c)/(b) >= 0.5, peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.archive import make_archive  # noqa: E402
from drumcat.commands.scan import scan  # noqa: E402
from drumcat.config import ScanConfig  # noqa: E402
from drumcat.storage.catalog import Catalog  # noqa: E402


def reference_pipeline(paths: list[Path]) -> float:
    """The reference design: one file at a time through librosa, the model called per 32 files."""
    import librosa
    import numpy as np

    from drumcat.audio.features import librosa_logmel
    from drumcat.model.bundle import load_bundle

    bundle = load_bundle()
    recipe, model = bundle.card.features, bundle.keras_model
    start = time.perf_counter()
    batch = []
    for path in paths:
        samples, _ = librosa.load(str(path), sr=recipe.sample_rate, mono=True)
        batch.append(librosa_logmel(samples, recipe))
        if len(batch) == 32:
            model.predict(np.stack(batch), verbose=0)
            batch = []
    if batch:
        model.predict(np.stack(batch), verbose=0)
    return len(paths) / (time.perf_counter() - start)


def decode_loop(paths: list[Path]) -> float:
    import soundfile as sf

    start = time.perf_counter()
    for path in paths:
        sf.read(str(path), dtype="float32")
    return len(paths) / (time.perf_counter() - start)


def _tree_rss_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def drumcat_infer(root: Path, count: int, workdir: Path) -> tuple[float, float]:
    """files/s of `drumcat infer` (wall time of the command, model loading included) and peak tree RSS in MB."""
    db = workdir / f"bench-{time.monotonic_ns()}.db"
    scan(Catalog(db), [root], ScanConfig())
    command = [sys.executable, "-m", "drumcat.cli", "--catalog", str(db), "infer", "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak, stop = [0], threading.Event()

    def sample_memory() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_kb(process.pid))

    # Memory is sampled beside the wait, not in its loop: a loop that sleeps between polls would count
    # up to 0.1 s after the command's exit (2% of a 5,000-file run) into its time.
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    process.wait()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"drumcat infer failed with exit code {process.returncode}")
    return count / elapsed, peak[0] / 1024


STEADY = """
import os, sys, time
from drumcat.workers import BLAS_THREAD_VARIABLES
for variable in BLAS_THREAD_VARIABLES:  # as `drumcat` itself does before numpy loads
    os.environ.setdefault(variable, "1")
from drumcat.commands.infer import infer
from drumcat.model.bundle import load_bundle
from drumcat.storage.catalog import Catalog
bundle, catalog = load_bundle(), Catalog(sys.argv[1])
start = time.perf_counter()
summary = infer(catalog, bundle)
print(summary.predicted, summary.predicted / (time.perf_counter() - start))
"""


def drumcat_infer_steady(root: Path, count: int, workdir: Path) -> float:
    """files/s of the library's infer() alone, the model already loaded, as on a large archive. In a
    process of its own: this one has TensorFlow's threads (the reference), which would make infer spawn
    its workers rather than fork them, and start-up is what this figure leaves out."""
    db = workdir / f"steady-{time.monotonic_ns()}.db"
    scan(Catalog(db), [root], ScanConfig())
    result = subprocess.run([sys.executable, "-c", STEADY, str(db)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    if result.returncode != 0:
        raise SystemExit(f"infer() failed: {result.stderr.strip().splitlines()[-1:]}")
    predicted, rate = result.stdout.split()
    assert int(predicted) == count, result.stdout
    return float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--reference-files", type=int, default=400,
                        help="the reference is slow: it runs on the first N files (files/s is what is compared)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archive", type=Path, default=Path("build/bench/archive"))
    args = parser.parse_args()

    paths = make_archive(args.archive, args.files)
    root = args.archive
    if len(list(root.rglob("*.wav"))) != len(paths):
        raise SystemExit(f"{root} holds more files than --files; pass another --archive")
    decode_loop(paths)  # warm the page cache for every contender
    reference, plain, ours, peaks, steady = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            reference.append(reference_pipeline(paths[: args.reference_files]))
            plain.append(decode_loop(paths))
            rate, peak = drumcat_infer(root, len(paths), Path(tmp))
            ours.append(rate)
            peaks.append(peak)
            steady.append(drumcat_infer_steady(root, len(paths), Path(tmp)))
    a, b, c, d = (statistics.median(x) for x in (reference, plain, ours, steady))
    print(f"files                              {len(paths)} (reference on {args.reference_files})")
    print(f"(a) reference librosa pipeline     {a:10,.0f} files/s")
    print(f"(b) plain soundfile decode loop    {b:10,.0f} files/s")
    print(f"(c) drumcat infer                  {c:10,.0f} files/s  (whole command, model load included)")
    print(f"(c') infer() with the model loaded {d:10,.0f} files/s  (start-up excluded: a large archive's rate)")
    print(f"(c)/(a)                            {c / a:10.1f}x    (target >= 10); (c')/(a) {d / a:.1f}x")
    print(f"(c)/(b)                            {c / b:10.2f}     (target >= 0.5); (c')/(b) {d / b:.2f}")
    print(f"peak RSS of drumcat infer tree     {max(peaks):10,.0f} MB   (target < 1,500 MB)")
    print(f"medians of {args.repeats} runs; each run's (c): {', '.join(f'{x:,.0f}' for x in ours)}")


if __name__ == "__main__":  # required: infer's spawn workers re-import this module
    main()

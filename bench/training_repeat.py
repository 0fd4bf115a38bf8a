"""Does a training run repeat exactly, and under which numeric kernels and thread counts?

Trains `make model`'s network (seed 1, its augmentation, optimizer and op determinism) for a few epochs on
the first N clips of the training kits, once per setting, each in a fresh process with only that setting's
variables set, and prints a digest of the training set's features, of the weights it ends with, and the
seconds per epoch. Equal digests mean equal arrays, bit for bit. The settings:

  default              each library's own choice for this CPU (numpy's and OpenBLAS's AVX-512 kernels, oneDNN
                       up to AVX-512 with FP16 and AMX here; OpenBLAS and TensorFlow one thread per core)
  oneDNN at AVX2 / AVX-512    ONEDNN_MAX_CPU_ISA caps TensorFlow's oneDNN kernels, as a lesser CPU would
  no oneDNN            TF_ENABLE_ONEDNN_OPTS=0 (with the AVX2 cap as well: does the cap still change anything?)
  numpy, BLAS at AVX2  numpy without its AVX-512 dispatch targets, OpenBLAS's Haswell kernels
  all at AVX2          both, and oneDNN at AVX2: an AVX2 CPU, asked of this one
  N threads            TF_NUM_INTRAOP_THREADS, the threads one TensorFlow operation splits its work over
  1 inter-op           TF_NUM_INTEROP_THREADS=1: operations run one at a time
  portable             drumcat/model/train/kernels.py's PORTABLE, what `drumcat train` runs by default
  portable, SSE4.1     the same with oneDNN's gemm-based convolutions: tried for CPUs of two kinds (an
                       AMD EPYC and the Xeons train other networks under portable: run 61); they differ
                       under it too, and it costs 2-3x the seconds an epoch (run 62)

    python bench/training_repeat.py [--dataset build/dataset] [--clips 2000] [--epochs 2] [--settings ...]
                                    [--qemu-cpu MODEL]

--qemu-cpu runs each training under qemu-user (Debian's qemu-user: `qemu-x86_64 -cpu MODEL`), which computes
every floating-point operation in software, the same way whatever MODEL is, and answers `cpuid` as MODEL
would: vendor, instruction sets, cache sizes. Different digests for two MODELs then come from what the
libraries read from the CPU, not from its arithmetic (run 62). It runs about 400 times slower: try
`--clips 200 --epochs 1 --settings portable`, about half an hour a MODEL on this machine (three runs). With
`--clips 16`, qemu 7.2 crashed twice within a minute (a segmentation fault inside the emulated process).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drumcat.model.train.kernels import PORTABLE  # noqa: E402  (no numpy import)

# What an AVX2-only x86 CPU runs, asked of this one: numpy's kernels without its AVX-512 dispatch targets,
# OpenBLAS's Haswell (AVX2) kernels and oneDNN's AVX2 ones. TensorFlow's own kernels are compiled once for
# every CPU.
AVX2_NUMPY_BLAS = {name: PORTABLE[name] for name in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
AVX2 = {"ONEDNN_MAX_CPU_ISA": PORTABLE["ONEDNN_MAX_CPU_ISA"], **AVX2_NUMPY_BLAS}
SETTINGS = {
    "default": {},
    "default, again": {},
    "oneDNN at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN at AVX-512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "no oneDNN": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "no oneDNN, again": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "no oneDNN, AVX2": {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "numpy, BLAS at AVX2": AVX2_NUMPY_BLAS,
    "all at AVX2": AVX2,
    "all at AVX2, again": AVX2,
    "all at AVX2, 1 thread": {**AVX2, "TF_NUM_INTRAOP_THREADS": "1"},
    "all at AVX2, 4 threads": {**AVX2, "TF_NUM_INTRAOP_THREADS": "4"},
    "all at AVX2, 4 threads, again": {**AVX2, "TF_NUM_INTRAOP_THREADS": "4"},
    "all at AVX2, 4 threads, 1 inter-op": {**AVX2, "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "1"},
    "all at AVX2, 8 threads": {**AVX2, "TF_NUM_INTRAOP_THREADS": "8"},
    "portable": PORTABLE,  # all at AVX2, 4 threads, 1 BLAS thread: what `drumcat train` runs by default
    "portable, again": PORTABLE,
    # oneDNN below AVX2 runs gemm-based convolutions instead of brgemm ones, which likely block by the cache
    # sizes. It did not make the networks the same on CPUs of two kinds: an AMD EPYC printed d2bea030, a
    # Xeon ac9edc51 (runs 61, 62). Kept so that a third kind can be compared.
    "portable, SSE4.1": {**PORTABLE, "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTEROP_THREADS", *PORTABLE)


def train_once(dataset: Path, clips: int, epochs: int) -> dict[str, object]:
    """In this process: the digest of the weights after `epochs` epochs, and seconds per epoch."""
    import numpy as np

    from drumcat.model.runtime import quiet_tensorflow
    from drumcat.model.train.train import Setup, load_split, network_digest, subset
    from drumcat.taxonomy import FINE_CLASSES

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(1)
    classes = list(FINE_CLASSES)
    split = load_split(dataset, "train", classes)
    split = subset(split, np.arange(min(clips, len(split.clips))))
    setup = Setup()
    x, targets, labels = setup.training_set(split, 1, len(classes), "selection")
    features = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]
    model = setup.model(len(classes))
    start = time.perf_counter()
    model.fit(x, targets, sample_weight=setup.sample_weights(split, labels, len(classes)), epochs=epochs,
              batch_size=64, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    digest = network_digest(model)[:16]  # as the card's training.network_sha256 begins
    return {"features": features, "digest": digest, "seconds_per_epoch": seconds, "examples": len(x)}


def run_setting(name: str, overrides: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    env.update(overrides, PYTHONPATH=str(ROOT))
    command = [sys.executable, __file__, "--one", "--dataset", str(args.dataset), "--clips", str(args.clips),
               "--epochs", str(args.epochs)]
    if args.qemu_cpu:
        command = ["qemu-x86_64", "-cpu", args.qemu_cpu, *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name}: training failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--clips", type=int, default=2000, help="the first N clips of the training kits")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--qemu-cpu", metavar="MODEL",
                        help="train under `qemu-x86_64 -cpu MODEL`: software arithmetic, MODEL's cpuid, ~400x slower")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: train once, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_once(args.dataset, args.clips, args.epochs)))
        return
    from drumcat.model.train.kernels import machine_description
    from drumcat.model.train.train import dataset_digest

    if args.qemu_cpu and not shutil.which("qemu-x86_64"):
        raise SystemExit("--qemu-cpu: qemu-x86_64 not found; install it with `apt-get install qemu-user`")
    emulated = f", training under qemu-x86_64 -cpu {args.qemu_cpu}" if args.qemu_cpu else ""
    print(f"machine: {machine_description()}{emulated}")
    print(f"dataset: {args.dataset}, sha256 {dataset_digest(args.dataset)}")
    print(f"{args.clips} training clips with their augmented copies, {args.epochs} epochs, seed 1, op determinism")
    print(f"{'setting':20} {'features digest':18} {'weights digest':18} {'s/epoch':>8}")
    for name in args.settings:
        outcome = run_setting(name, SETTINGS[name], args)
        print(f"{name:20} {outcome['features']:18} {outcome['digest']:18} {outcome['seconds_per_epoch']:8.1f}",
              flush=True)


if __name__ == "__main__":
    main()

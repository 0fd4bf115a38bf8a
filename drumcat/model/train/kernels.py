"""Which numeric kernels training runs, so that `make model` repeats bit for bit on another x86 machine of its kind.

numpy, OpenBLAS and TensorFlow's oneDNN each pick their kernels for the CPU they find, at run time, and the
kernels round differently: on one machine, capping any one of them at AVX2 (from AVX-512) gives other
features or other networks, and so does the number of threads TensorFlow or OpenBLAS splits a sum over
(`bench/training_repeat.py`; README, "Repeating a run on another machine"). The portable kernels are what
an AVX2 x86 CPU runs, in a fixed number of threads, asked of every CPU: AVX2 is the least the TensorFlow
wheels need. They are environment variables each library reads as it loads, so they are set before numpy
is imported. They make the features portable; TensorFlow's networks still differ on a CPU of another kind
(an AMD EPYC against the Xeons, run 61), most likely because oneDNN and Eigen block their products by the
cache sizes they find, which no variable sets. A Xeon with another L3 trained the same networks, and under
qemu-user one software arithmetic trained other networks when told it was another CPU (run 62).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

PORTABLE = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's dispatch targets above AVX2
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS's AVX2 kernels
    "OPENBLAS_NUM_THREADS": "1",
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # TensorFlow's oneDNN kernels; TF_ENABLE_ONEDNN_OPTS=0 leaves some in use
    "TF_NUM_INTRAOP_THREADS": "4",  # costs nothing measurable on 2 cores; uses 4 where there are more
}
"""The environment that makes training portable: about 20% slower per epoch than the native kernels on an
AVX-512 CPU (bench/training_repeat.py)."""

KERNELS = ("portable", "native")


def use_portable_kernels() -> None:
    """Set PORTABLE for this process, before numpy or TensorFlow loads (they read it once, as they load)."""
    loaded = [name for name in ("numpy", "tensorflow") if name in sys.modules]
    if loaded:
        raise RuntimeError(f"portable kernels must be chosen before {' and '.join(loaded)} is imported")
    os.environ.update(PORTABLE)


def kernels_in_effect() -> dict[str, object]:
    """What this process runs, as the card records it: numpy's enabled dispatch targets, OpenBLAS's kernels
    and threads, and the oneDNN and TensorFlow settings (unset: each library's own choice for this CPU)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    return {
        "portable": all(os.environ.get(name) == value for name, value in PORTABLE.items()),
        "numpy_dispatch": [target for target in __cpu_dispatch__ if __cpu_features__.get(target)],
        "openblas": sorted({f"{pool['architecture']}, {pool['num_threads']} thread(s)" for pool in blas}),
        **{name: os.environ.get(name, "unset") for name in ("ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS")},
    }


# Instruction sets the libraries' native kernels choose among (numpy, OpenBLAS, oneDNN): with native kernels a
# run repeats exactly only on a CPU with the same ones (bench/training_repeat.py).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile")


def machine_description() -> str:
    """The CPU a model trained on, with the instruction sets that change its rounding: a reproduction on
    other ones gives other networks."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    present = [feature for feature in CPU_FEATURES if feature in flags]
    caches = cache_sizes()
    return (f"{platform.machine()} CPU" + (f", {name}" if name else "") + (f" ({' '.join(present)})" if present else "")
            + f", {os.cpu_count()} logical CPUs" + (f", caches {caches}" if caches else ""))


def cache_sizes() -> str:
    """The first core's data and unified caches ("L1d 48K L2 2048K L3 307200K"): oneDNN may choose how it
    blocks a product by them, so two machines with the same instruction sets can still differ here."""
    found = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind, level, size = ((index / name).read_text().strip() for name in ("type", "level", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            found.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return " ".join(found)

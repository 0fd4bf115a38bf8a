"""Memory of `drumcat duplicates` on a large catalog: what regrouping holds beyond the fingerprints themselves.

    python bench/duplicates_memory.py [--sounds 100000]

Builds a catalog of synthetic fingerprinted sounds (decaying hits of random spectra, durations from 50 ms to
4 s, one in twenty with a near copy), then, each in a fresh process, measures the peak memory (VmHWM) above
what the process held before: (a) reading the fingerprints into an array (`fingerprinted_sounds`, the floor
any regrouping pays: 1,280 bytes a sound) and (b) the whole regroup (`find_near_duplicates`, nothing left to
fingerprint). Target: (b) / (a) <= 2.0. The regroup read every sound as a row of Python objects before, and
held those beside the array.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.fingerprint import BANDS, FRAMES  # noqa: E402
from drumcat.commands.near_duplicates import RECIPE_ID  # noqa: E402
from drumcat.storage.catalog import Catalog, execute_many  # noqa: E402

TARGET = 2.0


def synthetic_prints(count: int, rng: np.random.Generator) -> np.ndarray:
    """Quantized fingerprints of decaying hits: a spectral centre and width, a decay per band, an attack. The
    ranges give the share of audible cells the bench archive's real one-shots have (median 0.74 against
    0.80, 10th percentile 0.16 against 0.08): hits of narrow spectra that died in a few frames (median 0.12)
    left most cells silent, which made every pair easy to rule out (`could_be_close`)."""
    bands, frames = np.arange(BANDS)[None, :, None], np.arange(FRAMES)[None, None, :]
    centre, width = rng.uniform(0, BANDS, (count, 1, 1)), rng.uniform(1.5, 60, (count, 1, 1))
    decay = np.exp(rng.uniform(np.log(0.1), np.log(60), (count, 1, 1))) * np.exp(rng.normal(0, 0.5, (count, BANDS, 1)))
    attack = rng.integers(0, 6, (count, 1, 1))
    level = (240 - 60 * ((bands - centre) / width) ** 2 - decay * np.maximum(frames - attack, 0)
             - 40 * (frames < attack) + rng.normal(0, 6, (count, BANDS, FRAMES)))
    return np.clip(np.round(level), 0, 240).astype(np.uint8).reshape(count, -1)


def build_catalog(path: Path, sounds: int, seed: int = 0) -> None:
    """A catalog of `sounds` present files with audio facts and fingerprints, written straight to its tables."""
    rng = np.random.default_rng(seed)
    copies = sounds // 20
    prints = synthetic_prints(sounds - copies, rng)
    noisy = prints[:copies].astype(np.int16) + rng.integers(-1, 2, (copies, BANDS * FRAMES))
    prints = np.concatenate([prints, np.clip(noisy, 0, 240).astype(np.uint8)])
    durations = np.exp(rng.uniform(np.log(0.05), np.log(4.0), sounds))
    durations[sounds - copies:] = durations[:copies]
    catalog = Catalog(path, create=True)
    now = "2026-01-01T00:00:00Z"
    with catalog.connect() as conn:
        conn.exec_driver_sql("INSERT INTO roots (id, path, added_at) VALUES (1, '/archive', ?)", (now,))
        for start in range(0, sounds, 50_000):
            block = range(start, min(start + 50_000, sounds))
            execute_many(conn, """INSERT INTO files (root_id, path, rel_path, ext, size, mtime, mtime_ns, hash,
                                  hash_algorithm, first_seen, last_seen) VALUES (1, ?, ?, 'wav', 1000, ?, ?, ?,
                                  'sha256', ?, ?)""",
                         [(f"/archive/s{i}.wav", f"s{i}.wav", now, i, f"{i:064x}", now, now) for i in block])
            execute_many(conn, """INSERT INTO audio (hash, format, subtype, sample_rate, channels, frames, duration,
                                  read_at) VALUES (?, 'WAV', 'PCM_16', 44100, 1, ?, ?, ?)""",
                         [(f"{i:064x}", int(durations[i] * 44100), float(durations[i]), now) for i in block])
            execute_many(conn, "INSERT INTO fingerprints VALUES (?, ?, ?, ?)",
                         [(f"{i:064x}", prints[i].tobytes(), RECIPE_ID, now) for i in block])
    catalog.close()


MEASURE = """
import json, sys
from drumcat.storage.catalog import Catalog
from drumcat.commands.near_duplicates import find_near_duplicates, fingerprinted_sounds, forget_comparisons

def held_kb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

catalog = Catalog(sys.argv[1])
if sys.argv[2] == "regroup":  # a first regroup: no pair or compared sound kept from an earlier one
    forget_comparisons(catalog)
before, _ = held_kb()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak (VmHWM) starts again from what the process holds now
if sys.argv[2] == "read":
    with catalog.read() as conn:
        result = len(fingerprinted_sounds(conn).hashes)
else:
    result = find_near_duplicates(catalog, workers=1)
print(json.dumps({"peak_mb": (held_kb()[1] - before) / 1024, "result": result}))
"""


def measure(catalog: Path, what: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(catalog), what], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sounds", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog.db"
        build_catalog(catalog, args.sounds)
        reads, regroups = [], []
        for _ in range(args.repeats):  # alternated, so that both see the same machine
            reads.append(measure(catalog, "read")["peak_mb"])
            regroup = measure(catalog, "regroup")
            regroups.append(regroup["peak_mb"])
        read, whole = float(np.median(reads)), float(np.median(regroups))
        print(f"{args.sounds:,} sounds, {args.sounds * BANDS * FRAMES / 2**20:.0f} MB of fingerprints; "
              f"medians of {args.repeats}")
        print(f"(a) reading the fingerprints: {read:.0f} MB above the start")
        print(f"(b) the whole regroup:        {whole:.0f} MB ({regroup['result']})")
        ratio = whole / read
        print(f"(b)/(a) = {ratio:.2f} (target <= {TARGET}): {'met' if ratio <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()

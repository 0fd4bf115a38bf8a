"""`drumcat duplicates` after a scan that added a pack: the new sounds are compared with the others, not every
pair of the catalog again.

    python bench/regroup.py [--sounds 100000] [--pack 0.01] [--repeats 3]

Builds the synthetic catalog of bench/duplicates_memory.py (decaying hits of random spectra, 50 ms to 4 s,
one in twenty with a near copy) with a pack of extra sounds, the last `--pack` of them, near copies of
earlier ones among them. Then, alternated and each timed whole (`find_near_duplicates`, nothing left to
fingerprint): (a) the first regroup, the pack's files missing and nothing kept from an earlier run, the
reference; (b) the pack back, a regroup after (a). Target: (b)/(a) <= 0.3 for a pack of 1% of 100,000
sounds. The first regroup grows with the square of the catalog and a regroup after a pack with its size,
so the ratio falls as the catalog grows. Each (b) is checked against a first regroup of the whole catalog:
the same groups.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.duplicates_memory import build_catalog  # noqa: E402
from drumcat.commands.near_duplicates import find_near_duplicates, forget_comparisons  # noqa: E402
from drumcat.storage.catalog import Catalog, rows  # noqa: E402

TARGET = 0.3


def set_pack_missing(catalog: Catalog, first_pack_file: int, missing: bool) -> None:
    with catalog.connect() as conn:
        conn.exec_driver_sql("UPDATE files SET missing = ? WHERE id > ?", (int(missing), first_pack_file - 1))


def timed_regroup(catalog: Catalog) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    counts = find_near_duplicates(catalog, workers=1)
    return time.perf_counter() - start, counts


def groups(catalog: Catalog) -> set[frozenset[str]]:
    with catalog.read() as conn:
        members: dict[int, set[str]] = {}
        for row in rows(conn, "SELECT group_id, hash FROM near_duplicate_groups"):
            members.setdefault(row["group_id"], set()).add(row["hash"])
    return {frozenset(m) for m in members.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sounds", type=int, default=100_000, help="sounds before the pack")
    parser.add_argument("--pack", type=float, default=0.01, help="the pack's size, a share of --sounds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pack = max(1, round(args.sounds * args.pack))
    with tempfile.TemporaryDirectory() as folder:
        catalog_path = Path(folder) / "catalog.db"
        build_catalog(catalog_path, args.sounds + pack)  # file ids 1.., in order: the pack is the last ones
        catalog = Catalog(catalog_path)
        firsts, afters = [], []
        for _ in range(args.repeats):
            forget_comparisons(catalog)
            set_pack_missing(catalog, args.sounds + 1, True)
            first, _ = timed_regroup(catalog)
            set_pack_missing(catalog, args.sounds + 1, False)
            after, counts = timed_regroup(catalog)
            firsts.append(first)
            afters.append(after)
        incremental = groups(catalog)
        forget_comparisons(catalog)
        _, whole = timed_regroup(catalog)
        same = groups(catalog) == incremental
    a, b = float(np.median(firsts)), float(np.median(afters))
    print(f"{args.sounds:,} sounds and a pack of {pack:,}; medians of {args.repeats}, alternated")
    print(f"(a) the first regroup, without the pack: {a:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in firsts)})")
    print(f"(b) the regroup after the pack came in:  {b:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in afters)}); "
          f"{counts['compared']:,} sounds compared, {counts['groups']:,} groups")
    print(f"the groups of (b) and of a first regroup of everything ({whole['groups']:,}): "
          f"{'the same' if same else 'DIFFERENT'}")
    ratio = b / a
    print(f"(b)/(a) = {ratio:.3f} (target <= {TARGET}): {'met' if ratio <= TARGET and same else 'NOT met'}")


if __name__ == "__main__":
    main()

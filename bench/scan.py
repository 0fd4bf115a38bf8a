"""Scan benchmark: drumcat's cold scan against a plain read+sha256 loop on the same files, and a rescan.

    python bench/scan.py [--files 5000] [--repeats 3] [--archive DIR]

Prints medians over the repeats. Targets: cold scan / plain loop >= 0.8; an unchanged rescan of
50,000 files under 2 s (no file content read).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.archive import make_archive  # noqa: E402
from drumcat.commands.scan import scan  # noqa: E402
from drumcat.config import ScanConfig  # noqa: E402
from drumcat.storage.catalog import Catalog  # noqa: E402


def plain_loop(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        hashlib.sha256(path.read_bytes()).hexdigest()
    return len(paths) / (time.perf_counter() - start)


def cold_scan(root: Path, count: int, workdir: Path) -> tuple[float, Catalog]:
    db = workdir / f"bench-{time.monotonic_ns()}.db"
    catalog = Catalog(db)
    start = time.perf_counter()
    summary = scan(catalog, [root], ScanConfig())
    elapsed = time.perf_counter() - start
    assert summary.new == count, summary
    return count / elapsed, catalog


def rescan(catalog: Catalog, root: Path) -> float:
    start = time.perf_counter()
    summary = scan(catalog, [root], ScanConfig())
    elapsed = time.perf_counter() - start
    assert summary.new == summary.changed == 0, summary
    return elapsed


def make_small_archive(root: Path, count: int) -> None:
    """`count` tiny distinct WAV files: a rescan reads no content, so only the file count matters."""
    if len(list(root.rglob("*.wav"))) >= count:
        return
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(256, dtype=np.float32), 44_100, format="WAV", subtype="PCM_16")
    template = bytearray(buffer.getvalue())
    for index in range(count):
        folder = root / f"vendor{index // 500:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        template[-4:] = index.to_bytes(4, "little")
        (folder / f"s{index:06d}.wav").write_bytes(bytes(template))


def large_rescan(root: Path, count: int, repeats: int, workdir: Path) -> float:
    make_small_archive(root, count)
    catalog = Catalog(workdir / "rescan.db")
    scan(catalog, [root], ScanConfig())
    return statistics.median(rescan(catalog, root) for _ in range(repeats))


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archive", type=Path, default=Path("build/bench/archive"))
    parser.add_argument("--rescan-files", type=int, default=50_000,
                        help="size of the tiny-file archive the unchanged rescan is timed on")
    args = parser.parse_args()

    paths = make_archive(args.archive, args.files)
    plain_loop(paths)  # warm the page cache so both sides read from memory
    with tempfile.TemporaryDirectory() as tmp:
        plain, cold, again = [], [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(paths))
            rate, catalog = cold_scan(args.archive, len(paths), Path(tmp))
            cold.append(rate)
            again.append(rescan(catalog, args.archive))
            catalog.close()
        big_rescan = large_rescan(Path("build/bench/rescan-archive"), args.rescan_files, args.repeats, Path(tmp))
    own_rss, child_rss = peak_rss_mb()
    med_plain, med_cold, med_rescan = (statistics.median(x) for x in (plain, cold, again))
    print(f"files                       {len(paths)}")
    print(f"plain read+sha256 loop      {med_plain:10,.0f} files/s  (median of {args.repeats})")
    print(f"drumcat cold scan           {med_cold:10,.0f} files/s  (hash + header + peak/RMS levels)")
    print(f"ratio cold/plain            {med_cold / med_plain:10.2f}     (target >= 0.8)")
    print(f"unchanged rescan            {med_rescan:10.3f} s        ({len(paths)} files)")
    print(f"unchanged rescan            {big_rescan:10.3f} s        ({args.rescan_files} files; target < 2 s "
          "for 50,000)")
    print(f"peak RSS                    {own_rss:10.0f} MB main, {child_rss:.0f} MB largest worker")


if __name__ == "__main__":
    main()

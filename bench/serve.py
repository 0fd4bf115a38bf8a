"""Review page benchmark: every page of `drumcat serve` on a catalog of 100,000 sounds, and waveform
thumbnails of real one-shots, through the application in-process (Starlette's test client, so the
figures are the server's own work, not a network's).

    python bench/serve.py [--sounds 100000] [--repeats 11]

Prints, per page, the first request (which fills the whole-catalog aggregates' cache) and the median of
the repeats; per thumbnail, rendering one (decode + SVG) and serving a cached one. Targets: every page
under 300 ms, a thumbnail under 50 ms (medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.archive import make_archive  # noqa: E402
from bench.materialize import build_catalog  # noqa: E402
from drumcat.commands.scan import scan  # noqa: E402
from drumcat.config import ScanConfig  # noqa: E402
from drumcat.storage.catalog import Catalog  # noqa: E402
from drumcat.web.app import ReviewServer, create_app  # noqa: E402


def timed(client, url: str, repeats: int) -> tuple[float, float]:
    started = time.perf_counter()
    first = client.get(url)
    assert first.status_code == 200, (url, first.status_code, first.text[:200])
    cold = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    return cold * 1000, statistics.median(times) * 1000


def main() -> None:
    from starlette.testclient import TestClient

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sounds", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = build_catalog(Path(tmp), args.sounds)
        client = TestClient(create_app(ReviewServer(catalog)))
        with catalog.read() as conn:
            digest = conn.exec_driver_sql("SELECT hash FROM uncertain LIMIT 1").scalar()
        print(f"{args.sounds:,} files; per page: first request / median of {args.repeats} (ms)")
        for url in ("/", "/browse", "/browse?folder=Kick", "/browse?folder=misc&page=50&sort=name",
                    "/browse?q=vendor042", "/review", "/api/queue?offset=1000", f"/sound/{digest}"):
            cold, warm = timed(client, url, args.repeats)
            print(f"  {url:<42} {cold:8.1f} {warm:8.1f}")

        thumbs = Catalog(Path(tmp) / "thumbs.db")
        make_archive(Path(tmp) / "real", 200)
        scan(thumbs, [Path(tmp) / "real"], ScanConfig())
        thumb_client = TestClient(create_app(ReviewServer(thumbs)))
        with thumbs.read() as conn:
            hashes = [r[0] for r in conn.exec_driver_sql("SELECT hash FROM unique_files")]
        render, cached = [], []
        for h in hashes[: args.repeats * 3]:
            started = time.perf_counter()
            thumb_client.get(f"/thumb/{h}.svg")
            render.append(time.perf_counter() - started)
            started = time.perf_counter()
            thumb_client.get(f"/thumb/{h}.svg")
            cached.append(time.perf_counter() - started)
        print(f"thumbnail of a real one-shot (0.25-1.5 s, 44.1 kHz stereo), median of {len(render)}: "
              f"rendered {statistics.median(render) * 1000:.1f} ms, cached {statistics.median(cached) * 1000:.1f} ms")


if __name__ == "__main__":
    main()

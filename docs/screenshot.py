"""The review page's screenshot in the README (docs/review-page.png), taken from the demo catalog in a
real headless Chromium, as a user sees it after deciding two sounds with the keyboard (the server as
`drumcat serve` makes it, learning included).

    python docs/screenshot.py        # needs Debian's chromium; `make docs` runs it when it is there
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "review-page.png"


def review_key(label: str) -> str:
    """The review page's key for a label's core folder: 1 to 6 in core-class order, 0 for misc."""
    from drumcat.taxonomy import CORE_CLASSES, MISC, canonical

    core = canonical(label)
    return "0" if core == MISC else str(CORE_CLASSES.index(core) + 1)


def main() -> None:
    sys.path.insert(0, str(REPO))
    import uvicorn
    from playwright.sync_api import sync_playwright

    from drumcat.commands.demo import build_demo_archive, instrument_of
    from drumcat.commands.infer import infer
    from drumcat.commands.learning import Learner
    from drumcat.commands.scan import scan
    from drumcat.config import ScanConfig
    from drumcat.model.bundle import load_bundle
    from drumcat.storage.catalog import Catalog
    from drumcat.web.app import ReviewServer, create_app

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("docs/screenshot.py needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        build_demo_archive(Path(tmp) / "archive")
        catalog = Catalog(Path(tmp) / "drumcat.db")
        scan(catalog, [Path(tmp) / "archive"], ScanConfig(workers=1))
        infer(catalog, load_bundle(), workers=1)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        app = create_app(ReviewServer(catalog, learner=Learner(catalog)))
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 560})
            page.goto(f"http://127.0.0.1:{port}/review")
            for _ in range(2):  # the queue's first two sounds decided as a user who knows them would
                path = page.locator("tr.sound.current td.path").inner_text()
                page.keyboard.press(review_key(instrument_of(path)))
            page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 reviewed')")
            page.screenshot(path=str(OUT))
            browser.close()
        server.should_exit = True
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""The review page (`drumcat serve`): requests through Starlette's test client, and the page itself in a
real headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from drumcat.audio.synth import render, write_sample
from drumcat.commands.demo import build_demo_archive
from drumcat.commands.infer import infer
from drumcat.commands.learning import Learner
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.model.bundle import ModelBundle
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import write_overrides
from drumcat.web.app import REVIEW_NOTE, ReviewServer, allowed_hosts, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def demo_catalog(tmp_path: Path, bundle: ModelBundle) -> Catalog:
    build_demo_archive(tmp_path / "archive")
    catalog = Catalog(tmp_path / "c.db")
    scan(catalog, [tmp_path / "archive"], ScanConfig(workers=1))
    infer(catalog, bundle, workers=1)
    return catalog


@pytest.fixture
def client(demo_catalog: Catalog) -> TestClient:
    server = ReviewServer(demo_catalog, token="t0ken")
    return TestClient(create_app(server), raise_server_exceptions=False)


def a_hash(catalog: Catalog, where: str = "1") -> str:
    with catalog.read() as conn:
        return conn.exec_driver_sql(f"SELECT hash FROM unique_files WHERE {where} ORDER BY path LIMIT 1").scalar()


def overrides(catalog: Catalog) -> list[dict]:
    with catalog.read() as conn:
        return rows(conn, "SELECT hash, label, note FROM overrides ORDER BY created_at, hash")


# --- requests -------------------------------------------------------------------------------------


def test_every_page_answers_from_the_views(client: TestClient, demo_catalog: Catalog) -> None:
    digest = a_hash(demo_catalog)
    for url in ("/", "/browse", "/browse?folder=misc&sort=name", "/review", f"/sound/{digest}", "/api/queue"):
        response = client.get(url)
        assert response.status_code == 200, url
    with demo_catalog.read() as conn:
        order = [r["hash"] for r in rows(conn, "SELECT hash FROM review_queue")]
        uncertain = {r["hash"] for r in rows(conn, "SELECT hash FROM uncertain")}
    queue = client.get("/api/queue").json()
    assert [item["hash"] for item in queue["items"]] == order  # past the uncertain sounds too
    assert {item["hash"] for item in queue["items"] if item["uncertain"]} == uncertain
    assert queue["uncertain"] == len(uncertain) < queue["remaining"] == len(order)


def test_nothing_outside_the_catalog_can_be_read(client: TestClient) -> None:
    for url in ("/audio/..%2F..%2F..%2Fetc%2Fpasswd", "/audio/%2Fetc%2Fpasswd", "/thumb/../../etc/passwd.svg",
                "/static/../app.py", "/sound/" + "0" * 64, "/audio/" + "f" * 64):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "root:" not in response.text and "Traceback" not in response.text


def test_a_file_gone_since_the_scan_is_a_404_that_says_so(client: TestClient, demo_catalog: Catalog) -> None:
    """A moved MP3 (served as it is) failed inside the response: a 500 with no word of why."""
    for extension in ("mp3", "aiff"):  # served as the file, and decoded to WAV
        digest = a_hash(demo_catalog, f"path LIKE '%.{extension}'")
        with demo_catalog.read() as conn:
            path = Path(conn.exec_driver_sql("SELECT path FROM unique_files WHERE hash = ?", (digest,)).scalar())
        path.rename(path.with_name("moved"))
        try:
            for url in (f"/audio/{digest}", f"/thumb/{digest}.svg"):
                response = client.get(url)
                assert response.status_code == 404 and "gone since the last scan" in response.text, url
        finally:
            path.with_name("moved").rename(path)
        assert client.get(f"/audio/{digest}").status_code == 200


def test_a_write_needs_the_servers_token(client: TestClient, demo_catalog: Catalog) -> None:
    digest = a_hash(demo_catalog)
    assert client.post("/api/override", json={"hash": digest, "label": "Kick"}).status_code == 403
    assert client.post("/api/override", json={"hash": digest, "label": "Kick"},
                       headers={"X-Drumcat-Token": "guess"}).status_code == 403
    assert overrides(demo_catalog) == []
    done = client.post("/api/override", json={"hash": digest, "label": "Kick"}, headers={"X-Drumcat-Token": "t0ken"})
    assert done.status_code == 200
    assert {k: v for k, v in done.json().items() if k != "learning"} == {"hash": digest, "label": "Kick",
                                                                         "previous": None}
    assert done.json()["learning"]["state"] == "off"  # this server has no learner
    assert overrides(demo_catalog) == [{"hash": digest, "label": "Kick", "note": REVIEW_NOTE}]


def test_bad_requests_get_a_clear_4xx(client: TestClient, demo_catalog: Catalog) -> None:
    token = {"X-Drumcat-Token": "t0ken"}
    digest = a_hash(demo_catalog)
    assert client.post("/api/override", content=b"not json", headers=token).status_code == 400
    bad_label = client.post("/api/override", json={"hash": digest, "label": "Kik"}, headers=token)
    assert bad_label.status_code == 400 and "unknown label 'Kik'" in bad_label.json()["error"]
    assert client.get("/browse?sort=evil;DROP").status_code == 400
    assert client.get("/browse?page=x").status_code == 400
    assert client.get("/api/override").status_code == 405


def test_read_only_refuses_every_write(demo_catalog: Catalog) -> None:
    client = TestClient(create_app(ReviewServer(demo_catalog, read_only=True, token="t")))
    response = client.post("/api/override", json={"hash": a_hash(demo_catalog), "label": "Kick"},
                           headers={"X-Drumcat-Token": "t"})
    assert response.status_code == 403 and "read-only" in response.json()["error"]
    assert overrides(demo_catalog) == []


def test_undo_restores_what_was_there(client: TestClient, demo_catalog: Catalog) -> None:
    token = {"X-Drumcat-Token": "t0ken"}
    digest = a_hash(demo_catalog)
    client.post("/api/override", json={"hash": digest, "label": "Kick"}, headers=token)
    second = client.post("/api/override", json={"hash": digest, "label": "Tom"}, headers=token).json()
    client.post("/api/undo", json={"hash": digest, "label": second["previous"]}, headers=token)
    assert [o["label"] for o in overrides(demo_catalog)] == ["Kick"]
    client.post("/api/undo", json={"hash": digest, "label": None}, headers=token)
    assert overrides(demo_catalog) == []
    with demo_catalog.read() as conn:
        history = rows(conn, "SELECT label, previous FROM override_history WHERE hash = :h ORDER BY id",
                       {"h": digest})
    assert history == [{"label": "Kick", "previous": None}, {"label": "Tom", "previous": "Kick"},
                       {"label": "Kick", "previous": "Tom"}, {"label": None, "previous": "Kick"}]


def test_audio_is_the_original_file_with_ranges_and_aiff_becomes_wav(client: TestClient,
                                                                    demo_catalog: Catalog) -> None:
    wav = a_hash(demo_catalog, "path LIKE '%.wav'")
    with demo_catalog.read() as conn:
        original = Path(conn.exec_driver_sql("SELECT path FROM unique_files WHERE hash = ?", (wav,)).scalar())
    part = client.get(f"/audio/{wav}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == original.read_bytes()[:100]
    aiff_hash = a_hash(demo_catalog, "path LIKE '%.aif%'")
    aiff = client.get(f"/audio/{aiff_hash}")
    assert aiff.status_code == 200 and aiff.headers["content-type"] == "audio/wav"
    assert aiff.content[:4] == b"RIFF" and aiff.content[8:12] == b"WAVE"


def test_thumbnails_are_svg_and_cached_by_hash(client: TestClient, demo_catalog: Catalog) -> None:
    digest = a_hash(demo_catalog)
    first = client.get(f"/thumb/{digest}.svg")
    assert first.status_code == 200 and first.text.startswith("<svg") and "<path d=\"M" in first.text
    cached = demo_catalog.path.with_name("c.db.index") / "thumbs" / f"{digest}.svg"
    assert cached.read_text() == first.text


def test_new_results_show_on_reload_while_another_process_writes(client: TestClient, demo_catalog: Catalog,
                                                                 bundle: ModelBundle, tmp_path: Path) -> None:
    before = client.get("/").text
    write_sample(tmp_path / "archive" / "late" / "new-kick.wav", render("Kick", seed=4242))
    scan(demo_catalog, [tmp_path / "archive"], ScanConfig(workers=1))
    infer(demo_catalog, bundle, workers=1)
    after = client.get("/").text
    assert "24 unique sounds" in before and "25 unique sounds" in after


# --- the page in a real browser ---------------------------------------------------------------------


@contextmanager
def serving(server: ReviewServer) -> Iterator[str]:
    """`server` on a free port of this machine, in a thread, until the block ends; yields its URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(server, allowed_hosts("127.0.0.1"))  # as `drumcat serve` runs it
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_server(demo_catalog: Catalog) -> Iterator[tuple[str, ReviewServer]]:
    server = ReviewServer(demo_catalog)
    with serving(server) as url:
        yield url, server


@pytest.fixture
def browser_page() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian's `chromium` package; `make test` installs it when it runs as root)")
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def test_the_page_answers_only_this_machines_names(live_server: tuple) -> None:
    """A web page elsewhere whose own name resolves to 127.0.0.1 (DNS rebinding) would read the page, its
    token with it, and could then fetch the sounds and send corrections."""
    url, server = live_server
    port = int(url.rsplit(":", 1)[1])

    def get(host: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()

    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert get(host)[0] == 200, host
    status, body = get(f"rebind.example:{port}")
    assert status == 400 and server.token not in body
    assert allowed_hosts("0.0.0.0") == ["*"]  # asked to listen on other addresses: reached by other names


def test_the_overview_shows_the_model_and_the_folders(live_server: tuple, browser_page, demo_catalog: Catalog
                                                      ) -> None:
    url, _ = live_server
    browser_page.goto(url + "/")
    assert browser_page.text_content("#model") == "drumcat-v2"
    with demo_catalog.read() as conn:
        folders = [r["folder"] for r in rows(conn, "SELECT DISTINCT folder FROM routed ORDER BY folder")]
    assert browser_page.locator("#folders td a").all_text_contents() == folders


def test_a_sound_plays_from_the_browse_page(live_server: tuple, browser_page) -> None:
    url, _ = live_server
    browser_page.goto(url + "/browse?folder=misc")
    browser_page.locator("button.play").first.click()
    state = browser_page.evaluate("""() => new Promise((resolve) => {
        const player = document.getElementById("player");
        if (player.readyState >= 3) resolve(player.readyState);
        player.addEventListener("canplay", () => resolve(player.readyState));
        player.addEventListener("error", () => resolve(-1));
        setTimeout(() => resolve(player.readyState), 10000);
    })""")
    assert state >= 3  # HAVE_FUTURE_DATA: the audio element reached canplay


def test_three_sounds_reviewed_with_the_keyboard(live_server: tuple, browser_page, demo_catalog: Catalog,
                                                 tmp_path: Path) -> None:
    url, _ = live_server
    browser_page.goto(url + "/review")
    queue = browser_page.locator("#queue tr.sound")
    hashes = [queue.nth(i).get_attribute("data-hash") for i in range(3)]
    browser_page.keyboard.press("3")  # Kick
    browser_page.keyboard.press("6")  # Tom
    browser_page.keyboard.press("/")
    browser_page.keyboard.type("Cowbell")
    browser_page.keyboard.press("Enter")
    browser_page.wait_for_function("document.getElementById('progress').textContent.startsWith('3 reviewed')")
    with demo_catalog.read() as conn:
        left = conn.exec_driver_sql("SELECT count(*) FROM uncertain").scalar()
    assert browser_page.text_content("#progress") == f"3 reviewed · {left} uncertain left"
    assert {(o["hash"], o["label"]) for o in overrides(demo_catalog)} == {
        (hashes[0], "Kick"), (hashes[1], "Tom"), (hashes[2], "Cowbell")}
    assert {o["note"] for o in overrides(demo_catalog)} == {REVIEW_NOTE}
    browser_page.keyboard.press("u")
    browser_page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 reviewed')")
    assert {o["hash"] for o in overrides(demo_catalog)} == set(hashes[:2])
    browser_page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert (tmp_path / "review.png").stat().st_size > 10_000


def test_after_a_round_of_learning_the_page_takes_the_queue_as_the_learned_model_ranks_it(
        browser_page, demo_catalog: Catalog) -> None:
    with demo_catalog.read() as conn:
        queue = [r["hash"] for r in rows(conn, "SELECT hash FROM review_queue")]
    corrected_before = queue[::-1][:19]  # the surest; the 20th decision, made on the page, starts the round
    with demo_catalog.connect() as conn:
        write_overrides(conn, [{"hash": h, "correct_label": "Kick", "note": "test"} for h in corrected_before])
    server = ReviewServer(demo_catalog, learner=Learner(demo_catalog, every=1))
    with serving(server) as url:
        browser_page.goto(url + "/review")
        assert "1 more decision" in browser_page.text_content("#learning")
        first_two = [browser_page.locator("#queue tr.sound").nth(i).get_attribute("data-hash") for i in range(2)]
        browser_page.keyboard.press("4")  # Snare, for the first sound of the queue
        browser_page.wait_for_selector("#queue[data-generation='1']", timeout=120_000)
        server.learner.wait()
        learned = server.learner.status()["model"]
        assert learned == "drumcat-v2-reviewed-20" and learned in browser_page.text_content("#learning")
        with demo_catalog.read() as conn:
            assert conn.exec_driver_sql("SELECT name FROM models WHERE id = (SELECT model_id FROM active_model)"
                                        ).scalar() == learned
            reranked = [r["hash"] for r in rows(conn, "SELECT hash FROM review_queue")]
        on_page = [row.get_attribute("data-hash") for row in browser_page.locator("#queue tr.sound").all()]
        assert on_page[:2] == first_two  # the decided row and the current one stay
        assert on_page[2:] == [h for h in reranked if h != first_two[1]]


def test_a_decision_after_another_process_changed_the_catalog_does_not_hide_the_change(
        client: TestClient, demo_catalog: Catalog, tmp_path: Path) -> None:
    from drumcat.model.adapt import adapt
    from drumcat.storage.results import set_active_model

    with demo_catalog.read() as conn:
        queue = [r["hash"] for r in rows(conn, "SELECT hash FROM review_queue")]
    with demo_catalog.connect() as conn:
        write_overrides(conn, [{"hash": h, "correct_label": "Kick", "note": "test"} for h in queue[::-1][:20]])
    mine = adapt(demo_catalog, out=tmp_path / "mine.keras")
    client.get("/review")  # the server reads the catalog
    set_active_model(Catalog(demo_catalog.path), mine.model_id)  # another process switches the model
    token = {"X-Drumcat-Token": "t0ken"}
    assert client.post("/api/override", json={"hash": queue[0], "label": "Snare"}, headers=token).status_code == 200
    with demo_catalog.read() as conn:
        expected = {r["hash"]: r["label"] for r in rows(conn, "SELECT hash, label FROM review_queue")}
    shown = {item["hash"]: item["label"] for item in client.get("/api/queue").json()["items"]}
    assert shown == expected and queue[0] not in shown

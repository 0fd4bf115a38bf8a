"""The review page's web application (Starlette): pages over the views, audio, thumbnails, corrections.

Every page reads the views (and the overrides, for the review queue's history), through the same rules
as the command line. Sounds are addressed by content hash, never by a path from the request, so nothing
outside the catalog can be read. Writes are POSTs that carry the per-server token (another site's page
cannot send it), are refused with --read-only, and go to the same `overrides` table `drumcat override`
writes, one decision at a time, so a closed tab loses nothing. After every 25 decisions (--learn-every) the
model learns from every correction so far, in a background thread (commands/learning.py), and the page
takes the rest of its queue from the re-ranked view.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from drumcat.audio.files import AudioReadError
from drumcat.commands.learning import Learner
from drumcat.commands.similar import index_dir
from drumcat.paths import os_path
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import (
    RuleChanges,
    active_model_name,
    effective_rules,
    known_labels,
    rules_for_this_command,
    write_overrides,
)
from drumcat.taxonomy import CORE_CLASSES, MISC
from drumcat.web.waveform import thumbnail

PAGE_SIZE = 100
REVIEW_NOTE = "review page"
BROWSER_PLAYABLE = {"wav", "mp3", "ogg", "flac"}  # others (AIFF) are sent as WAV, converted on the fly
_HASH = re.compile(r"^[0-9a-f]{16,128}$")
SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "confidence": lambda row: (row["confidence"], row["path"]),
    "-confidence": lambda row: (-row["confidence"], row["path"]),
    "name": lambda row: (row["name"], row["path"]),
}


SOUNDS_SQL = """
    SELECT r.hash, r.label, r.core_label, r.confidence, r.core_confidence, r.second_label, r.second_confidence,
           r.folder,
           r.model_folder, r.overridden, u.path, u.name, a.duration
    FROM routed r JOIN unique_files u ON u.hash = r.hash LEFT JOIN audio a ON a.hash = r.hash
    WHERE 1"""


class SoundTable:
    """The routed sounds (one row each, with path and length); the uncorrected ones in review order, and
    which of those the rules call uncertain, each read when a page first needs it (the overview needs
    only the uncertain ones: reading the whole queue too costs 1.3 s at 100,000 sounds)."""

    def __init__(self, version: tuple, rows_: list[dict[str, Any]], read: Callable[[str], list[str]]) -> None:
        self.version = version
        self.rows = rows_
        self.by_hash = {row["hash"]: row for row in rows_}
        self._read = read
        self._queue: list[str] | None = None
        self._uncertain: set[str] | None = None

    @property
    def queue(self) -> list[str]:
        """Every uncorrected sound in review order (review_queue)."""
        if self._queue is None:
            self._queue = self._read("SELECT hash FROM review_queue")
        return self._queue

    @property
    def uncertain(self) -> set[str]:
        if self._uncertain is None:
            self._uncertain = set(self._read("SELECT hash FROM uncertain"))
        return self._uncertain

    def reorder(self) -> None:
        """A sound came back into the queue: read the order again when next needed."""
        self._queue = self._uncertain = None

    def replace(self, digest: str, row: dict[str, Any] | None) -> None:
        old = self.by_hash.pop(digest, None)
        if old is not None:
            self.rows.remove(old)
        if row is not None:
            self.rows.append(row)
            self.by_hash[digest] = row
            if row["overridden"]:
                if self._queue is not None:
                    self._queue = [h for h in self._queue if h != digest]
                if self._uncertain is not None:
                    self._uncertain.discard(digest)


class ReviewServer:
    """The state one `drumcat serve` holds: the catalog, the rules of this command, the write token."""

    def __init__(self, catalog: Catalog, *, read_only: bool = False, changes: RuleChanges | None = None,
                 token: str | None = None, learner: Learner | None = None) -> None:
        self.catalog = catalog
        self.read_only = read_only
        self.learner = learner
        if learner is not None:
            learner.after_round.append(self.forget_sounds)
        self.changes = changes or RuleChanges()
        self.token = token or secrets.token_urlsafe(24)
        self.templates = Environment(loader=PackageLoader("drumcat.web", "templates"),
                                     autoescape=select_autoescape(["html"]))
        self._cache: dict[str, tuple[tuple, Any]] = {}
        self._sounds: SoundTable | None = None

    # --- reading ------------------------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with rules_for_this_command(self.catalog, self.changes) as conn:
            return rows(conn, sql, params)

    def catalog_version(self) -> tuple:
        """Changes whenever any process commits to the catalog (WAL mode appends every commit to -wal)."""
        version = []
        for suffix in ("", "-wal"):
            try:
                stat = Path(f"{self.catalog.path}{suffix}").stat()
                version.append((stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                version.append(None)
        return tuple(version)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """A whole-catalog result, recomputed only when the catalog changed (new results show on reload)."""
        version = self.catalog_version()
        hit = self._cache.get(key)
        if hit is None or hit[0] != version:
            hit = (version, compute())
            self._cache[key] = hit
        return hit[1]

    def sounds(self) -> SoundTable:
        """Every sound as the views route it, read in one pass whenever another process changed the
        catalog: a page then filters, sorts and counts in memory (100,000 sounds: bench/serve.py)."""
        version = self.catalog_version()
        if self._sounds is None or self._sounds.version != version:
            self._sounds = SoundTable(version, self.query(SOUNDS_SQL),
                                      lambda sql: [r["hash"] for r in self.query(sql)])
        return self._sounds

    def after_own_write(self, digest: str, before: tuple) -> None:
        """This server changed one sound's override: update that row instead of reading everything again,
        unless the catalog had changed since the table was read (`before`: its version just before this
        write), which the next read then picks up."""
        table = self.sounds_if_loaded()
        if table is None or table.version != before:
            return
        fresh = self.query(SOUNDS_SQL.replace("WHERE 1", "WHERE r.hash = :h"), {"h": digest})
        table.replace(digest, fresh[0] if fresh else None)
        if fresh and not fresh[0]["overridden"]:  # back in the queue where the view puts it
            table.reorder()
        table.version = self.catalog_version()
        self._cache.clear()  # everything cached is derived from the table just changed

    def sounds_if_loaded(self) -> SoundTable | None:
        return self._sounds

    def forget_sounds(self) -> None:
        """Read everything again at the next request (a learning round switched the views' model)."""
        self._sounds = None
        self._cache.clear()

    def sound_or_404(self, digest: str) -> dict[str, Any]:
        """A present sound by its content hash (one index lookup), or a 404."""
        if not _HASH.match(digest):
            raise HTTPException(404, "no such sound: sounds are addressed by their content hash")
        found = self.query("""SELECT f.hash, min(f.path) AS path, count(*) AS copies, a.format, a.duration,
                                     a.sample_rate, a.channels
                              FROM present_files f LEFT JOIN audio a ON a.hash = f.hash
                              WHERE f.hash = :h GROUP BY f.hash""", {"h": digest})
        if not found:
            raise HTTPException(404, f"no present, readable sound with hash {digest[:16]}… in this catalog")
        return {**found[0], "name": Path(found[0]["path"]).name}

    # --- writing ------------------------------------------------------------------------------------

    async def checked_body(self, request: Request) -> dict[str, Any]:
        if self.read_only:
            raise HTTPException(403, "this server is read-only (drumcat serve --read-only)")
        if request.headers.get("x-drumcat-token") != self.token:
            raise HTTPException(403, "missing or wrong token: corrections come only from this server's own pages")
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, "the request body must be a JSON object") from exc
        if not isinstance(body, dict) or not isinstance(body.get("hash"), str):
            raise HTTPException(400, "the request needs a JSON object with a hash")
        self.sound_or_404(body["hash"])
        return body

    def set_label(self, digest: str, label: str | None) -> dict[str, Any]:
        """Set (or, with None, remove) the override of one sound; returns the label it had before."""
        before = self.catalog_version()
        with self.catalog.connect() as conn:
            previous = conn.exec_driver_sql("SELECT label FROM overrides WHERE hash = ?", (digest,)).scalar()
            if label is None:
                conn.exec_driver_sql("DELETE FROM overrides WHERE hash = ?", (digest,))
            else:
                if label not in known_labels(conn) | {MISC}:
                    raise HTTPException(400, f"unknown label {label!r}: use one of the classes or misc")
                write_overrides(conn, [{"hash": digest, "correct_label": label, "note": REVIEW_NOTE}])
        self.after_own_write(digest, before)
        if self.learner is not None:
            self.learner.after_decision()
        return {"hash": digest, "label": label, "previous": previous, "learning": self.learning()}

    def learning(self) -> dict[str, Any]:
        """What the learner is doing, for the page's status line."""
        if self.learner is None:
            return {"state": "off", "generation": 0, "model": None, "learned_from": 0,
                    "message": "read-only: no learning" if self.read_only else "learning is off"}
        return self.learner.status()


# --- pages --------------------------------------------------------------------------------------------


def overview_data(server: ReviewServer) -> dict[str, Any]:
    table = server.sounds()
    return {**server.cached("overview", lambda: overview_counts(table)), **overview_facts(server)}


def overview_facts(server: ReviewServer) -> dict[str, Any]:
    """What the overview reads from small tables on every request (cheap, and always current)."""
    counts = server.query("""SELECT (SELECT count(*) FROM files WHERE missing = 0 AND error IS NOT NULL) AS unreadable,
                                    (SELECT count(*) FROM overrides) AS overrides""")[0]
    with rules_for_this_command(server.catalog, server.changes) as conn:
        return {"model": active_model_name(conn), "rules": effective_rules(conn, [("this server", server.changes)]),
                "facts": counts}


def overview_counts(table: SoundTable) -> dict[str, Any]:
    """Sounds per folder and class, the confidence histogram, what the corrections change."""
    folders = Counter(row["folder"] for row in table.rows)
    classes: dict[tuple[str, str], list] = {}  # a fine label's sounds may add up to more than one core class
    for row in table.rows:
        counted = classes.setdefault((row["label"], row["core_label"]), [0, 0.0])
        counted[0] += 1
        counted[1] += row["confidence"]
    bins = Counter(min(int(row["confidence"] * 10), 9) for row in table.rows)
    top = max(bins.values(), default=1)
    return {
        "folders": [{"folder": f, "sounds": n} for f, n in sorted(folders.items())],
        "classes": [{"label": label, "core_label": core, "sounds": n, "mean": round(total / n, 3)}
                    for (label, core), (n, total) in sorted(classes.items(), key=lambda kv: (-kv[1][0], kv[0]))],
        "bars": [{"low": b / 10, "sounds": bins.get(b, 0), "height": round(60 * bins.get(b, 0) / top)}
                 for b in range(10)],
        "counts": {"sounds": len(table.rows), "uncertain": len(table.uncertain)},
        "changes": corrections_effect(table),
    }


def corrections_effect(table: SoundTable) -> list[dict[str, Any]]:
    """Sounds per folder as the model's labels route them and as the overrides do: what
    `drumcat materialize` would change."""
    before = Counter(row["model_folder"] for row in table.rows)
    after = Counter(row["folder"] for row in table.rows)
    return [{"folder": f, "before": before[f], "after": after[f]} for f in sorted(set(before) | set(after))
            if before[f] != after[f]]


def browse_data(server: ReviewServer, request: Request) -> dict[str, Any]:
    params = request.query_params
    folder, label, text = params.get("folder"), params.get("label"), params.get("q", "")
    sort = params.get("sort", "-confidence")
    if sort not in SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(SORTS)}")
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError as exc:
        raise HTTPException(400, "page must be a number") from exc
    table = server.sounds()
    key = f"browse:{folder}:{label}:{text.lower()}:{sort}"
    chosen = server.cached(key, lambda: sorted(
        (row for row in table.rows if (not folder or row["folder"] == folder) and (not label or row["label"] == label)
         and (not text or text.lower() in row["path"].lower())), key=SORTS[sort]))
    start = (page - 1) * PAGE_SIZE
    return {"items": chosen[start:start + PAGE_SIZE], "total": len(chosen), "page": page,
            "pages": max(1, -(-len(chosen) // PAGE_SIZE)), "folder": folder or "", "label": label or "", "q": text,
            "sort": sort, "sorts": list(SORTS)}


def review_queue(server: ReviewServer, offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """The uncorrected sounds in review order (the uncertain ones marked), how many are left, how many of
    them are uncertain, and how many the review page has decided already. The queue goes on past the
    uncertain sounds: correcting the next least sure still teaches the model (bench/adapt.py)."""
    table = server.sounds()
    items = [{**table.by_hash[h], "uncertain": h in table.uncertain}
             for h in table.queue[offset:offset + limit] if h in table.by_hash]
    reviewed = server.query("SELECT count(*) AS n FROM overrides WHERE note = :note", {"note": REVIEW_NOTE})[0]["n"]
    return {"items": items, "remaining": len(table.queue), "uncertain": len(table.uncertain), "reviewed": reviewed}


def sound_data(server: ReviewServer, digest: str) -> dict[str, Any]:
    from drumcat.commands.similar import similar

    sound = server.sound_or_404(digest)
    classified = server.sounds().by_hash.get(digest)
    vector = server.query("""SELECT pr.class, pr.probability FROM probabilities pr
                             WHERE pr.hash = :h AND pr.model_id = (SELECT model_id FROM active_model)
                             ORDER BY pr.probability DESC""", {"h": digest})
    paths = server.query("SELECT path FROM present_files WHERE hash = :h ORDER BY path", {"h": digest})
    history = server.query("SELECT label, previous, note, changed_at FROM override_history WHERE hash = :h "
                           "ORDER BY id DESC", {"h": digest})
    try:
        neighbours = similar(server.catalog, digest, k=8, changes=server.changes)["neighbours"]
    except Exception:  # no embeddings yet (or none for this sound): the page shows none
        neighbours = []
    return {"sound": sound, "classified": classified, "vector": vector,
            "paths": paths, "history": history, "neighbours": neighbours}


# --- the application ------------------------------------------------------------------------------


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # Host headers name IPv6 addresses in brackets


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def allowed_hosts(host: str) -> list[str]:
    """The Host headers the page answers when it listens on `host`. On the loopback address, only this
    machine's own names: a web page elsewhere could otherwise reach the server through a name of its own
    that resolves to 127.0.0.1 (DNS rebinding), read a page with its token and then hear the sounds and
    send corrections. A server on another address was asked to be reached by other names: any."""
    return sorted({*LOOPBACK_NAMES, host}) if is_loopback(host) else ["*"]


def create_app(server: ReviewServer, hosts: list[str] | None = None) -> Starlette:
    """The review page's application; `hosts`: the Host headers it answers (`allowed_hosts`), all by default."""
    def page(name: str, request: Request, **context: Any) -> HTMLResponse:
        template = server.templates.get_template(name)
        labels = sorted(r["name"] for r in server.query("SELECT name FROM classes"))
        return HTMLResponse(template.render(token=server.token, read_only=server.read_only, path=request.url.path,
                                            core=CORE_CLASSES, labels=[*labels, MISC], **context))

    async def overview(request: Request) -> Response:
        return page("overview.html", request, **overview_data(server), catalog=server.catalog.path)

    async def browse(request: Request) -> Response:
        return page("browse.html", request, **browse_data(server, request))

    async def review(request: Request) -> Response:
        return page("review.html", request, queue=review_queue(server), learning=server.learning())

    async def review_rows(request: Request) -> Response:
        """The queue's first rows as the review page renders them, for the page to take after a round."""
        found = review_queue(server)
        rows_html = "".join(server.templates.get_template("_queue_row.html").render(item=item)
                            for item in found["items"])
        return JSONResponse({"rows": rows_html, "remaining": found["remaining"], "uncertain": found["uncertain"],
                             "learning": server.learning()})

    async def learning(request: Request) -> Response:
        return JSONResponse(server.learning())

    async def queue(request: Request) -> Response:
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError as exc:
            raise HTTPException(400, "offset must be a number") from exc
        return JSONResponse(review_queue(server, offset))

    async def sound(request: Request) -> Response:
        return page("sound.html", request, **sound_data(server, request.path_params["digest"]))

    async def audio(request: Request) -> Response:
        path = file_or_404(server.sound_or_404(request.path_params["digest"]))
        if path.suffix.lower().lstrip(".") in BROWSER_PLAYABLE:
            return FileResponse(path, headers={"Cache-Control": "max-age=3600"})
        return Response(as_wav(path), media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    async def thumb(request: Request) -> Response:
        found = server.sound_or_404(request.path_params["digest"])
        try:
            picture = thumbnail(file_or_404(found), index_dir(server.catalog) / "thumbs", found["hash"])
        except (AudioReadError, OSError) as exc:
            raise HTTPException(404, f"cannot read this sound's file ({exc})") from exc
        return Response(picture, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def override(request: Request) -> Response:
        body = await server.checked_body(request)
        label = body.get("label")
        if not isinstance(label, str) or not label:
            raise HTTPException(400, "the request needs a label")
        return JSONResponse(server.set_label(body["hash"], label))

    async def undo(request: Request) -> Response:
        body = await server.checked_body(request)
        label = body.get("label")
        if label is not None and not isinstance(label, str):
            raise HTTPException(400, "label must be a class name or null")
        return JSONResponse(server.set_label(body["hash"], label))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", None) or "not found"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=status)
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}: {escape_html(detail)}</p>"
                            '<p><a href="/">drumcat</a></p>', status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    static = Path(__file__).resolve().parent / "static"
    return Starlette(
        routes=[
            Route("/", overview), Route("/browse", browse), Route("/review", review),
            Route("/sound/{digest}", sound), Route("/audio/{digest}", audio), Route("/thumb/{digest}.svg", thumb),
            Route("/api/queue", queue), Route("/api/queue/rows", review_rows), Route("/api/learning", learning),
            Route("/api/override", override, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ],
        exception_handlers={HTTPException: http_error, 404: http_error, 405: http_error, 500: server_error},
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["*"])],
    )


def escape_html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def file_or_404(found: dict[str, Any]) -> Path:
    """A sound's file, or a 404 that says it is gone: the catalog knows it from the last scan, and a file
    moved or deleted since then would otherwise fail the response itself (a 500)."""
    path = Path(os_path(found["path"]))
    if not path.is_file():
        raise HTTPException(404, f"{found['name']}: gone since the last scan (moved or deleted); "
                                 "scan its archive again")
    return path


def as_wav(path: Path) -> bytes:
    """A file the browser cannot play (AIFF), as 16-bit WAV bytes."""
    try:
        data, rate = sf.read(os.fsencode(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise HTTPException(404, f"cannot decode this sound's file ({exc})") from exc
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(data, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()

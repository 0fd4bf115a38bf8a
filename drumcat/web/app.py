"""The review page's web application (Starlette): pages over the views, audio, thumbnails, corrections.

Every page reads the views (and the overrides, for the review queue's history), through the same rules
as the command line. Sounds are addressed by content hash, never by a path from the request, so nothing
outside the catalog can be read. Writes are POSTs that carry the per-server token (another site's page
cannot send it), are refused with --read-only, and go to the same `overrides` table `drumcat override`
writes, one decision at a time, so a closed tab loses nothing.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from drumcat.audio import AudioReadError
from drumcat.catalog import Catalog, rows
from drumcat.rules import (
    RuleChanges,
    active_model_name,
    effective_rules,
    known_labels,
    rules_for_this_command,
    write_overrides,
)
from drumcat.similar import index_dir
from drumcat.taxonomy import CORE_CLASSES, MISC
from drumcat.web.waveform import thumbnail

PAGE_SIZE = 100
REVIEW_NOTE = "review page"
BROWSER_PLAYABLE = {"wav", "mp3", "ogg", "flac"}  # others (AIFF) are sent as WAV, converted on the fly
_HASH = re.compile(r"^[0-9a-f]{16,128}$")
_SORTS = {"confidence": "r.confidence, u.path", "-confidence": "r.confidence DESC, u.path", "name": "u.name, u.path"}


class ReviewServer:
    """The state one `drumcat serve` holds: the catalog, the rules of this command, the write token."""

    def __init__(self, catalog: Catalog, *, read_only: bool = False, changes: RuleChanges | None = None,
                 token: str | None = None) -> None:
        self.catalog = catalog
        self.read_only = read_only
        self.changes = changes or RuleChanges()
        self.token = token or secrets.token_urlsafe(24)
        self.templates = Environment(loader=PackageLoader("drumcat.web", "templates"),
                                     autoescape=select_autoescape(["html"]))
        self._cache: dict[str, tuple[tuple, Any]] = {}

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
        """A whole-catalog aggregate, recomputed only when the catalog changed (new results show on reload)."""
        version = self.catalog_version()
        hit = self._cache.get(key)
        if hit is None or hit[0] != version:
            hit = (version, compute())
            self._cache[key] = hit
        return hit[1]

    def sound_or_404(self, digest: str) -> dict[str, Any]:
        if not _HASH.match(digest):
            raise HTTPException(404, "no such sound: sounds are addressed by their content hash")
        found = self.query("""SELECT u.hash, u.path, u.name, u.copies, a.format, a.duration, a.sample_rate,
                                     a.channels FROM unique_files u LEFT JOIN audio a ON a.hash = u.hash
                              WHERE u.hash = :h""", {"h": digest})
        if not found:
            raise HTTPException(404, f"no present, readable sound with hash {digest[:16]}… in this catalog")
        return found[0]

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
        with self.catalog.connect() as conn:
            previous = conn.exec_driver_sql("SELECT label FROM overrides WHERE hash = ?", (digest,)).scalar()
            if label is None:
                conn.exec_driver_sql("DELETE FROM overrides WHERE hash = ?", (digest,))
            else:
                if label not in known_labels(conn) | {MISC}:
                    raise HTTPException(400, f"unknown label {label!r}: use one of the classes or misc")
                write_overrides(conn, [{"hash": digest, "correct_label": label, "note": REVIEW_NOTE}])
        return {"hash": digest, "label": label, "previous": previous}


# --- pages --------------------------------------------------------------------------------------------


def overview_data(server: ReviewServer) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        folders = server.query("SELECT folder, count(*) AS sounds FROM routed GROUP BY folder ORDER BY folder")
        classes = server.query("""SELECT label, core_label, count(*) AS sounds, round(avg(confidence), 3) AS mean
                                  FROM routed GROUP BY label ORDER BY sounds DESC, label""")
        histogram = server.query("""SELECT min(CAST(confidence * 10 AS INTEGER), 9) AS bin, count(*) AS sounds
                                    FROM routed GROUP BY bin ORDER BY bin""")
        counts = server.query("""SELECT (SELECT count(*) FROM files WHERE missing = 0 AND error IS NOT NULL)
                                        AS unreadable,
                                        (SELECT count(*) FROM overrides) AS overrides,
                                        (SELECT count(*) FROM uncertain) AS uncertain,
                                        (SELECT count(*) FROM unique_files) AS sounds""")[0]
        return {"folders": folders, "classes": classes, "histogram": histogram, "counts": counts}

    data = dict(server.cached("overview", compute))
    with rules_for_this_command(server.catalog, server.changes) as conn:
        data["model"] = active_model_name(conn)
        data["rules"] = effective_rules(conn, [("this server", server.changes)])
    bins = {row["bin"]: row["sounds"] for row in data["histogram"]}
    top = max(bins.values(), default=1)
    data["bars"] = [{"low": b / 10, "sounds": bins.get(b, 0), "height": round(60 * bins.get(b, 0) / top)}
                    for b in range(10)]
    data["changes"] = corrections_effect(server)
    return data


def corrections_effect(server: ReviewServer) -> list[dict[str, Any]]:
    """Sounds per folder without the overrides and with them: what `drumcat materialize` would change."""
    def compute() -> list[dict[str, Any]]:
        found = server.query("""
            SELECT folder, sum(without) AS before, sum(with) AS after FROM (
                SELECT CASE WHEN r.model_confidence < rules.threshold THEN 'misc'
                            WHEN rules.allow_all THEN r.predicted_label
                            WHEN cm.canonical IN (SELECT label FROM target_labels) THEN cm.canonical
                            ELSE 'misc' END AS folder, 1 AS without, 0 AS with
                FROM routed r CROSS JOIN rules LEFT JOIN canonical_map cm ON cm.fine = r.predicted_label
                UNION ALL SELECT folder, 0, 1 FROM routed)
            GROUP BY folder ORDER BY folder""")
        return [row for row in found if row["before"] != row["after"]]

    return server.cached("effect", compute)


def browse_data(server: ReviewServer, request: Request) -> dict[str, Any]:
    params = request.query_params
    folder, label, text = params.get("folder"), params.get("label"), params.get("q", "")
    sort = params.get("sort", "-confidence")
    if sort not in _SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(_SORTS)}")
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError as exc:
        raise HTTPException(400, "page must be a number") from exc
    where, values = ["1"], {}
    if folder:
        where.append("r.folder = :folder")
        values["folder"] = folder
    if label:
        where.append("r.label = :label")
        values["label"] = label
    if text:
        where.append("instr(lower(u.path), :text) > 0")
        values["text"] = text.lower()
    condition = " AND ".join(where)
    total = server.cached(f"count:{condition}:{json.dumps(values, sort_keys=True)}", lambda: server.query(
        f"SELECT count(*) AS n FROM routed r JOIN unique_files u ON u.hash = r.hash WHERE {condition}",
        values)[0]["n"])
    items = server.query(f"""
        SELECT r.hash, r.label, r.confidence, r.second_label, r.second_confidence, r.folder, r.overridden,
               u.path, u.name, a.duration
        FROM routed r JOIN unique_files u ON u.hash = r.hash LEFT JOIN audio a ON a.hash = r.hash
        WHERE {condition} ORDER BY {_SORTS[sort]} LIMIT :limit OFFSET :offset""",
                         {**values, "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE})
    return {"items": items, "total": total, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
            "folder": folder or "", "label": label or "", "q": text, "sort": sort, "sorts": list(_SORTS)}


def review_queue(server: ReviewServer, offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """The uncertain sounds in review order, and how many the review page has decided already."""
    items = server.query("""SELECT q.hash, q.label, q.confidence, q.second_label, q.margin, q.src AS path,
                                   a.duration FROM uncertain q LEFT JOIN audio a ON a.hash = q.hash
                            LIMIT :limit OFFSET :offset""", {"limit": limit, "offset": offset})
    counts = server.query("""SELECT (SELECT count(*) FROM uncertain) AS remaining,
                                    (SELECT count(*) FROM overrides WHERE note = :note) AS reviewed""",
                          {"note": REVIEW_NOTE})[0]
    return {"items": items, **counts}


def sound_data(server: ReviewServer, digest: str) -> dict[str, Any]:
    from drumcat.similar import similar

    sound = server.sound_or_404(digest)
    classified = server.query("SELECT * FROM routed WHERE hash = :h", {"h": digest})
    vector = server.query("""SELECT pr.class, pr.probability FROM probabilities pr
                             WHERE pr.hash = :h AND pr.model_id = (SELECT min(model_id) FROM active_model)
                             ORDER BY pr.probability DESC""", {"h": digest})
    paths = server.query("SELECT path FROM present_files WHERE hash = :h ORDER BY path", {"h": digest})
    history = server.query("SELECT label, previous, note, changed_at FROM override_history WHERE hash = :h "
                           "ORDER BY id DESC", {"h": digest})
    try:
        neighbours = similar(server.catalog, digest, k=8, changes=server.changes)["neighbours"]
    except Exception:  # no embeddings yet (or none for this sound): the page shows none
        neighbours = []
    return {"sound": sound, "classified": classified[0] if classified else None, "vector": vector,
            "paths": paths, "history": history, "neighbours": neighbours}


# --- the application ------------------------------------------------------------------------------


def create_app(server: ReviewServer) -> Starlette:
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
        return page("review.html", request, queue=review_queue(server))

    async def queue(request: Request) -> Response:
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError as exc:
            raise HTTPException(400, "offset must be a number") from exc
        return JSONResponse(review_queue(server, offset))

    async def sound(request: Request) -> Response:
        return page("sound.html", request, **sound_data(server, request.path_params["digest"]))

    async def audio(request: Request) -> Response:
        found = server.sound_or_404(request.path_params["digest"])
        path = Path(found["path"])
        if path.suffix.lower().lstrip(".") in BROWSER_PLAYABLE:
            return FileResponse(path, headers={"Cache-Control": "max-age=3600"})
        return Response(as_wav(path), media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    async def thumb(request: Request) -> Response:
        found = server.sound_or_404(request.path_params["digest"])
        try:
            picture = thumbnail(Path(found["path"]), index_dir(server.catalog) / "thumbs", found["hash"])
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
            Route("/api/queue", queue), Route("/api/override", override, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ],
        exception_handlers={HTTPException: http_error, 404: http_error, 405: http_error, 500: server_error},
    )


def escape_html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def as_wav(path: Path) -> bytes:
    """A file the browser cannot play (AIFF), as 16-bit WAV bytes."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise HTTPException(404, f"cannot decode this sound's file ({exc})") from exc
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(data, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()

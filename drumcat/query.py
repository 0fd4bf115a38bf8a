"""`drumcat query` and `drumcat views`: read-only SQL against the catalog, and the views it offers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from drumcat.catalog import Catalog, rows
from drumcat.errors import DrumcatError


def run_readonly(catalog_path: Path, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL on a read-only connection: a statement that writes fails, whatever it is."""
    uri = f"file:{Path(catalog_path).resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DrumcatError(f"{catalog_path}: cannot open read-only ({exc})") from exc
    try:
        db.execute("PRAGMA query_only = ON")
        cursor = db.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        records = cursor.fetchmany(limit) if limit else cursor.fetchall()
        return columns, records
    except sqlite3.Error as exc:
        raise DrumcatError(f"query failed: {exc}; the catalog is opened read-only") from exc
    finally:
        db.close()


def list_views(catalog: Catalog) -> list[dict[str, Any]]:
    """Every view with its description and whether it follows the materialize contract."""
    with catalog.read() as conn:
        notes = {r["name"]: r["description"] for r in rows(conn, "SELECT name, description FROM view_notes")}
        views = []
        for record in rows(conn, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name"):
            name = record["name"]
            columns = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{name}")')}
            views.append({
                "view": name,
                "materializable": {"src", "dest"} <= columns,
                "rows": conn.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar(),
                "description": notes.get(name, "(your own view)"),
            })
    return views

"""`drumcat query` and `drumcat views`: read-only SQL against the catalog, and the views it offers."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.exc import DBAPIError

from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import RuleChanges, rules_for_this_command


def _deny_attach(action: int, *_args: object) -> int:
    """sqlite3 authorizer: ATTACH would create a file at any path, even on a query-only connection."""
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


def run_readonly(
    catalog: Catalog, sql: str, limit: int | None = None, changes: RuleChanges | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL that may only read (query_only, no ATTACH), seeing the rules of this command."""
    with rules_for_this_command(catalog, changes) as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA query_only = ON")
        raw.set_authorizer(_deny_attach)
        try:
            cursor = raw.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            records = cursor.fetchmany(limit) if limit else cursor.fetchall()
            return columns, records
        except sqlite3.Error as exc:
            raise DrumcatError(f"query failed: {exc}; drumcat query is read-only (no writes, no ATTACH)") from exc
        finally:
            raw.set_authorizer(None)
            raw.execute("PRAGMA query_only = OFF")


def list_views(catalog: Catalog, changes: RuleChanges | None = None) -> list[dict[str, Any]]:
    """Every view with its description, row count and whether it follows the materialize contract. A view
    that cannot run (say, a user's view over a dropped table) is listed as broken, with SQLite's reason."""
    with rules_for_this_command(catalog, changes) as conn:
        notes = {r["name"]: r["description"] for r in rows(conn, "SELECT name, description FROM view_notes")}
        views = []
        for record in rows(conn, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name"):
            name = record["name"]
            quoted = name.replace('"', '""')
            try:
                columns = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{quoted}")')}
                count = conn.exec_driver_sql(f'SELECT count(*) FROM "{quoted}"').scalar()
                description = notes.get(name, "(your own view)")
            except DBAPIError as exc:
                columns, count = set(), None
                description = f"broken: {getattr(exc, 'orig', exc)}"
            views.append({"view": name, "materializable": {"src", "dest"} <= columns, "rows": count,
                          "description": description})
    return views

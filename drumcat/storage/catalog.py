"""The SQLite catalog: engine setup, numbered SQL migrations, and small helpers for typed access.

How the catalog is stored lives here; what a drum sample is lives in the modules that use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text

from drumcat.errors import DrumcatError
from drumcat.paths import os_path
from drumcat.resources import migrations_dir
from drumcat.times import utc_now

BUSY_TIMEOUT_MS = 30_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def available_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations/NNNN_name.sql files, in version order."""
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise DrumcatError(f"{path}: migration files must be named NNNN_lower_case_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    return found


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster than FULL
    cursor.close()


class Catalog:
    """An open catalog file, migrated to the newest schema this drumcat knows."""

    def __init__(self, path: Path, *, migrate: bool = True, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise DrumcatError(f"no catalog at {self.path}; `drumcat scan ARCHIVE` creates one (or pass --catalog)")
        if not self.path.parent.is_dir():
            raise DrumcatError(f"{self.path}: folder {self.path.parent} does not exist; create it first")
        refuse_foreign_file(self.path)
        self.engine: Engine = create_engine(f"sqlite:///{self.path}", future=True)
        event.listen(self.engine, "connect", _set_pragmas)
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
        except Exception as exc:
            raise DrumcatError(one_line_database_error(self.path, exc)) from exc
        if migrate:
            self.migrate()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in one transaction, committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # --- migrations -------------------------------------------------------------------------------

    def applied_versions(self) -> list[int]:
        with self.read() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            ).first()
            if not exists:
                return []
            return [row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")]

    def migrate(self) -> list[Migration]:
        """Apply every migration not yet recorded, each in its own transaction. Returns those applied."""
        migrations = available_migrations()
        applied = set(self.applied_versions())
        newest_known = max((m.version for m in migrations), default=0)
        if applied and max(applied) > newest_known:
            raise DrumcatError(
                f"{self.path}: catalog schema version {max(applied)} was written by a newer drumcat "
                f"(this one knows up to {newest_known}); upgrade drumcat to open it"
            )
        pending = [m for m in migrations if m.version not in applied]
        if not pending:
            return []
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.executescript(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);"
            )
            for migration in pending:
                # executescript runs the file as one transaction: a failing migration leaves no trace.
                cursor.executescript(
                    "BEGIN;\n" + migration.sql + "\n"
                    f"INSERT INTO schema_migrations VALUES ({migration.version}, "
                    f"'{migration.name}', '{utc_now()}');\nCOMMIT;"
                )
        except Exception as exc:
            raw.rollback()
            raise DrumcatError(one_line_database_error(self.path, exc)) from exc
        finally:
            raw.close()
        return pending

    def schema_version(self) -> int:
        return max(self.applied_versions(), default=0)

    def check(self, *, full: bool = True) -> list[str]:
        """SQLite's own checks (integrity_check, or the faster quick_check) and foreign keys; [] means sound."""
        pragma = "integrity_check" if full else "quick_check"
        with self.read() as conn:
            problems = [r[0] for r in conn.exec_driver_sql(f"PRAGMA {pragma}") if r[0] != "ok"]
            problems += [f"foreign key: {r[0]} row {r[1]} -> {r[2]}"
                         for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
        return problems


SQLITE_HEADER = b"SQLite format 3\x00"


def refuse_foreign_file(path: Path) -> None:
    """An existing file that is not a SQLite database (a .wav in the archive, a typo) is never written."""
    if not path.exists():
        return
    if not path.is_file():
        raise DrumcatError(f"{path}: not a file; pass --catalog with a catalog file")
    with open(path, "rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise DrumcatError(f"{path}: exists and is not a drumcat catalog (not a SQLite database); it is left as "
                           "it is: pass --catalog with another path")


def one_line_database_error(path: Path, exc: BaseException) -> str:
    """What to do about a database error, in one line."""
    text = str(getattr(exc, "orig", exc))
    if "malformed" in text or "not a database" in text or "disk image" in text:
        return (f"{path}: the catalog is damaged ({text}); nothing was written. Restore a backup, or run "
                "`drumcat check` to see what is wrong; a catalog can be rebuilt with `drumcat scan` and `infer`")
    if "readonly" in text or "read-only" in text:
        return f"{path}: the catalog (or its folder) is read-only; make it writable, or use a copy"
    if "unable to open" in text:
        return f"{path}: cannot open the catalog ({text}); check the path and its folder's permissions"
    if "disk is full" in text:
        return (f"{path}: the catalog's disk is full; free space there and run the command again (what it "
                "committed is kept and is not done twice)")
    return f"{path}: catalog error ({text})"


def rows(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run a query and return plain dicts, the shape the CLI prints and tests assert on."""
    result = conn.execute(text(sql), params or {})
    return [dict(row._mapping) for row in result]


def pages_by_hash(fetch: Callable[[str], Sequence[Any]],
                  hash_of: Callable[[Any], str] = lambda row: row["hash"]) -> Iterator[Sequence[Any]]:
    """The batches `fetch(last)` returns, each the rows after hash `last` in hash order, until one comes
    back empty: a large table read a bounded batch at a time (keyset paging, so each batch is an index
    seek), on a connection per batch or one for all, as `fetch` decides. `hash_of` reads a row's hash
    (rows as dicts by default; the driver's tuples where a dict per row costs too much)."""
    last = ""
    while batch := fetch(last):
        yield batch
        last = hash_of(batch[-1])


def scalar(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    return conn.execute(text(sql), params or {}).scalar()


def execute_many(conn: Connection, sql: str, params: Sequence[dict[str, Any]] | Sequence[tuple]) -> None:
    """Bulk write with the driver's executemany (named :params with dicts, ? with tuples); skips
    SQLAlchemy's per-row compiling."""
    if params:
        conn.exec_driver_sql(sql, list(params))


def scanned_archives(catalog: Catalog) -> list[Path]:
    """The folders `scan` was given, as paths to open."""
    with catalog.read() as conn:
        return [Path(os_path(path)) for (path,) in conn.exec_driver_sql("SELECT path FROM roots")]

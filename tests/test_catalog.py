"""The catalog file: migrations recorded in the database, newer catalogs refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from drumcat.catalog import Catalog, available_migrations
from drumcat.errors import DrumcatError


def test_migrations_applied_to_empty_catalog_are_recorded(tmp_path: Path) -> None:
    Catalog(tmp_path / "c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        recorded = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert recorded == [m.version for m in available_migrations()]
    assert {"roots", "files", "audio", "scans"} <= tables
    assert journal == "wal"


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    Catalog(tmp_path / "c.db").close()
    catalog = Catalog(tmp_path / "c.db")
    assert catalog.migrate() == []
    catalog.close()


def test_catalog_from_newer_drumcat_is_refused(tmp_path: Path) -> None:
    Catalog(tmp_path / "c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("INSERT INTO schema_migrations VALUES (9999, 'future', '2030-01-01T00:00:00Z')")
    with pytest.raises(DrumcatError, match="newer drumcat"):
        Catalog(tmp_path / "c.db")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("this is not a database " * 100)
    with pytest.raises(DrumcatError, match="notes.db"):
        Catalog(bogus)

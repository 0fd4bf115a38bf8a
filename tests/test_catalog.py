"""The catalog file: migrations recorded in the database, newer catalogs refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog, available_migrations


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


def _catalog_at_version(path: Path, version: int) -> None:
    """A catalog as an older drumcat left it: the migrations up to `version`, applied with sqlite3 alone."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "applied_at TEXT NOT NULL)")
        for migration in available_migrations():
            if migration.version <= version:
                db.executescript(migration.sql)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00Z')",
                           (migration.version, migration.name))


def test_upgrade_keeps_every_probability_and_the_view_gives_the_old_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _catalog_at_version(path, 3)
    labels = ["Kick", "Snare", "Hihat"]
    stored = {("a" * 64, "Kick"): 0.7, ("a" * 64, "Snare"): 0.2, ("a" * 64, "Hihat"): 0.1,
              ("b" * 64, "Kick"): 0.05, ("b" * 64, "Snare"): 0.05, ("b" * 64, "Hihat"): 0.9}
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO models VALUES (1, 'm', 'h', 'm.keras', ?, '{}', 'now')", (json.dumps(labels),))
        db.execute("INSERT INTO inference_runs (id, model_id, started_at, config) VALUES (1, 1, 'now', '{}')")
        for digest in ("a" * 64, "b" * 64):
            db.execute("INSERT INTO predictions (model_id, hash, run_id, label, confidence, predicted_at) "
                       "VALUES (1, ?, 1, 'Kick', 0.5, 'now')", (digest,))
        # rows in an order unlike the labels': the vector must follow models.labels, not insertion order
        db.executemany("INSERT INTO probabilities VALUES (1, ?, ?, ?)",
                       [(h, c, p) for (h, c), p in sorted(stored.items(), reverse=True)])

    Catalog(path).close()

    with sqlite3.connect(path) as db:
        rows = {(h, c): p for h, c, p in db.execute("SELECT hash, class, probability FROM probabilities")}
        vector = db.execute("SELECT probabilities FROM predictions WHERE hash=?", ("b" * 64,)).fetchone()[0]
        kind = db.execute("SELECT type FROM sqlite_master WHERE name='probabilities'").fetchone()[0]
    assert rows == stored
    assert json.loads(vector) == [0.05, 0.05, 0.9]
    assert kind == "view"


def test_upgrade_keeps_the_model_and_the_threshold_the_views_used(tmp_path: Path) -> None:
    """Migrations 5 and 6 rename misc_threshold and keep the active model: an old catalog's views show the
    same thing after the upgrade."""
    path = tmp_path / "old.db"
    _catalog_at_version(path, 4)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO models VALUES (1, 'a', 'h1', 'a.keras', '[\"Kick\"]', '{}', 'now')")
        db.execute("INSERT INTO models VALUES (2, 'b', 'h2', 'b.keras', '[\"Kick\"]', '{}', 'now')")
        db.execute("INSERT INTO inference_runs (id, model_id, started_at, config) VALUES (1, 2, 'now', '{}')")
        db.execute("INSERT INTO predictions (model_id, hash, run_id, label, confidence, predicted_at, "
                   "probabilities) VALUES (2, ?, 1, 'Kick', 0.5, 'now', '[1.0]')", ("a" * 64,))
        db.execute("UPDATE settings SET value = '1' WHERE key = 'active_model'")
        db.execute("UPDATE settings SET value = '0.7' WHERE key = 'misc_threshold'")

    Catalog(path).close()

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT model_id FROM active_model").fetchall() == [(1,)]
        assert db.execute("SELECT threshold FROM rules").fetchall() == [(0.7,)]
        assert db.execute("SELECT count(*) FROM settings WHERE key = 'misc_threshold'").fetchone() == (0,)


def test_upgrade_decides_the_core_folder_of_every_stored_prediction(tmp_path: Path) -> None:
    """Migration 11's SQL gives the stored predictions the core decisions drumcat computes for new ones."""
    import numpy as np

    from drumcat.taxonomy import core_decisions, default_canonical_map

    path = tmp_path / "old.db"
    _catalog_at_version(path, 10)
    labels = ["China", "Crash", "Kick", "Tom", "Bongo"]
    vectors = {"a" * 64: [0.30, 0.25, 0.45, 0.0, 0.0], "b" * 64: [0.0, 0.0, 0.3, 0.2, 0.5]}
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO models VALUES (1, 'm', 'h', 'm.keras', ?, '{}', 'now')", (json.dumps(labels),))
        db.execute("INSERT INTO inference_runs (id, model_id, started_at, config) VALUES (1, 1, 'now', '{}')")
        for digest, vector in vectors.items():
            top = labels[int(np.argmax(vector))]
            db.execute("INSERT INTO predictions (model_id, hash, run_id, label, confidence, predicted_at, "
                       "probabilities) VALUES (1, ?, 1, ?, ?, 'now', ?)",
                       (digest, top, max(vector), json.dumps(vector)))
        db.execute("UPDATE settings SET value = '1' WHERE key = 'active_model'")

    Catalog(path).close()

    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT core_label, probability, margin FROM core_decisions ORDER BY hash").fetchall()
        routed = db.execute("SELECT label, core_label, folder FROM routed ORDER BY hash").fetchall()
    expected = core_decisions(np.array(list(vectors.values())), labels, default_canonical_map(labels))
    assert [label for label, _, _ in stored] == expected.labels == ["Crash", "misc"]
    np.testing.assert_allclose([row[1:] for row in stored],
                               np.stack([expected.probabilities, expected.margins], axis=1), atol=1e-9)
    np.testing.assert_allclose(expected.margins, [0.1, 0.2], atol=1e-9)  # Bongo (misc) 0.5 against Kick 0.3
    # The fine label stays the model's top class; the folder is the core class that adds up to the most.
    assert routed == [("Kick", "Crash", "Crash"), ("Bongo", "misc", "misc")]

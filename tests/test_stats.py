"""`drumcat stats` on a real catalog."""

from __future__ import annotations

from pathlib import Path

from drumcat.audio.synth import INSTRUMENTS
from drumcat.commands.infer import infer
from drumcat.model.bundle import ModelBundle
from drumcat.storage.catalog import Catalog


def test_stats_shows_labels_after_infer(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> None:
    from drumcat.commands.stats import catalog_stats

    infer(catalog, bundle, workers=1)
    stats = catalog_stats(catalog)
    assert sum(row["sounds"] for row in stats["labels"]) == len(INSTRUMENTS) * 3
    assert 0 < stats["confidence"]["min"] <= stats["confidence"]["median"] <= stats["confidence"]["max"] <= 1


def test_the_label_and_confidence_figures_are_the_classified_views(tmp_path: Path) -> None:
    """stats reads the view once and reduces its rows in Python: the figures are what SQL gives over the view
    (counts, means, lowest middle value), overrides included."""
    from bench.review_order import catalog_with_new_sounds
    from drumcat.commands.stats import catalog_stats
    from drumcat.storage.catalog import rows, scalar

    catalog, _ = catalog_with_new_sounds(tmp_path / "catalog.db", 3001, width=8)
    with catalog.connect() as conn:
        some = [r["hash"] for r in rows(conn, "SELECT hash FROM classified ORDER BY hash LIMIT 40")]
        for digest in some:
            conn.exec_driver_sql("INSERT INTO overrides (hash, label, note, created_at) VALUES (?, 'Kick', NULL, "
                                 "'2026-01-01T00:00:00Z')", (digest,))
    stats = catalog_stats(catalog)
    with catalog.read() as conn:
        expected_labels = rows(conn, """
            SELECT label, core_label, count(*) AS sounds, round(avg(confidence), 3) AS mean_confidence
            FROM classified GROUP BY label, core_label ORDER BY sounds DESC, label, core_label""")
        expected = rows(conn, """
            SELECT count(*) AS sounds, round(avg(confidence), 4) AS mean, round(min(confidence), 4) AS min,
                   round(max(confidence), 4) AS max FROM classified""")[0]
        expected["median"] = round(scalar(conn, "SELECT confidence FROM classified ORDER BY confidence "
                                                "LIMIT 1 OFFSET 1500"), 4)
    assert stats["labels"] == expected_labels
    assert any(row["label"] == "Kick" and row["sounds"] >= 40 for row in stats["labels"])
    assert stats["confidence"] == expected

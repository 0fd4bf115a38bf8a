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

"""The rules: one typed value, stored in the catalog, changed for one command by drumcat.toml or flags,
stored for good only when asked; and the one canonical mapping that everything collapsing labels uses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from drumcat.audio.synth import render, write_sample
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.model.evaluate import core_report
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import RuleChanges, Rules, parse_rule, rules_for_this_command, stored_rules
from drumcat.taxonomy import CORE_CLASSES, FINE_CLASSES, default_canonical_map
from tests.helpers import drumcat, record_predictions


@pytest.fixture
def classified(tmp_path: Path) -> Path:
    """A catalog file with two predicted sounds: a confident kick and a 0.55 snare."""
    root = tmp_path / "archive"
    write_sample(root / "kick.wav", render("Kick", seed=1))
    write_sample(root / "snare.wav", render("Snare", seed=2))
    catalog = Catalog(tmp_path / "c.db")
    scan(catalog, [root], ScanConfig(workers=1))
    with catalog.read() as conn:
        names = {Path(r["path"]).stem: r["hash"] for r in rows(conn, "SELECT path, hash FROM files")}
    record_predictions(catalog, {names["kick"]: {"Kick": 0.9, "Tom": 0.1},
                                 names["snare"]: {"Snare": 0.55, "Clap": 0.45}})
    catalog.close()
    return tmp_path


def folder_counts(workdir: Path, *args: str) -> dict[str, int]:
    result = drumcat("--catalog", "c.db", *args, "query", "--json",
                     "SELECT folder, count(*) AS n FROM routed GROUP BY folder ORDER BY folder", cwd=workdir)
    return {row["folder"]: row["n"] for row in json.loads(result.stdout)}


def test_a_threshold_stored_with_sqlite3_is_not_put_back_by_drumcat_toml(classified: Path) -> None:
    (classified / "drumcat.toml").write_text('[catalog]\npath = "c.db"\n')  # a config that sets no rule
    with sqlite3.connect(classified / "c.db") as db:
        db.execute("UPDATE settings SET value = '0.6' WHERE key = 'threshold'")
    assert folder_counts(classified) == {"Kick": 1, "misc": 1}  # the 0.55 snare is below 0.6
    drumcat("--catalog", "c.db", "stats", cwd=classified)
    with sqlite3.connect(classified / "c.db") as db:
        assert db.execute("SELECT value FROM settings WHERE key = 'threshold'").fetchone() == ("0.6",)


def test_drumcat_toml_rules_apply_to_the_command_and_are_stored_only_by_rules_apply(classified: Path) -> None:
    (classified / "drumcat.toml").write_text("[taxonomy]\nthreshold = 0.6\n")
    assert folder_counts(classified) == {"Kick": 1, "misc": 1}
    (classified / "drumcat.toml").unlink()
    assert folder_counts(classified) == {"Kick": 1, "Snare": 1}  # nothing was stored

    (classified / "drumcat.toml").write_text("[taxonomy]\nthreshold = 0.6\n")
    report = json.loads(drumcat("--catalog", "c.db", "rules", "--json", cwd=classified).stdout)
    threshold = next(r for r in report if r["rule"] == "threshold")
    assert threshold["value"] == 0.6 and threshold["source"].startswith("drumcat.toml")
    assert "stored threshold" in drumcat("--catalog", "c.db", "rules", "apply", cwd=classified).stdout
    (classified / "drumcat.toml").unlink()
    assert folder_counts(classified) == {"Kick": 1, "misc": 1}
    report = json.loads(drumcat("--catalog", "c.db", "rules", "--json", cwd=classified).stdout)
    assert {r["rule"]: r["source"] for r in report}["threshold"] == "catalog"


def test_rules_set_stores_typed_values_and_refuses_bad_ones(classified: Path) -> None:
    drumcat("--catalog", "c.db", "rules", "set", "allow_all", "true", cwd=classified)
    drumcat("--catalog", "c.db", "rules", "set", "target_labels", "Kick,Snare", cwd=classified)
    catalog = Catalog(classified / "c.db")
    with catalog.read() as conn:
        assert stored_rules(conn) == Rules(allow_all=True, target_labels=("Kick", "Snare"))
    bad = drumcat("--catalog", "c.db", "rules", "set", "threshold", "high", cwd=classified, check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "threshold: expected a number" in bad.stderr
    with pytest.raises(DrumcatError, match="unknown rule 'misc_threshold'"):
        parse_rule("misc_threshold", "0.5")
    many = ",".join(f"Nope{index}" for index in range(40))
    bad = drumcat("--catalog", "c.db", "rules", "set", "target_labels", many, cwd=classified, check=False)
    assert bad.returncode == 1 and "Nope0, Nope1, Nope10, Nope11, Nope12 and 35 more;" in bad.stderr  # one short line


def test_flags_win_over_drumcat_toml_for_one_command(classified: Path) -> None:
    (classified / "drumcat.toml").write_text("[taxonomy]\nthreshold = 0.6\n")
    result = drumcat("--catalog", "c.db", "materialize", "--out", "tree", "--threshold", "0.5", "--json",
                     cwd=classified)
    summary = json.loads(result.stdout)
    assert summary["threshold"] == 0.5 and summary["per_folder"] == {"Kick": 1, "Snare": 1}


def test_a_fresh_catalog_holds_the_taxonomy_module_defines(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    with catalog.read() as conn:
        assert [r["name"] for r in rows(conn, "SELECT name FROM classes ORDER BY name")] == sorted(FINE_CLASSES)
        mapping = {r["fine"]: r["canonical"] for r in rows(conn, "SELECT fine, canonical FROM canonical_map")}
        assert mapping == default_canonical_map()
        assert stored_rules(conn).target_labels == tuple(sorted(CORE_CLASSES))


def test_core_metrics_collapse_with_the_mapping_given() -> None:
    labels = list(FINE_CLASSES)
    probabilities = np.zeros((2, len(labels)))
    probabilities[:, labels.index("Clap")] = 1.0
    builtin = core_report(["Snare", "Snare"], probabilities, labels)
    assert builtin["accuracy"] == 0.0  # Clap is misc in the built-in mapping
    users = core_report(["Snare", "Snare"], probabilities, labels, {**default_canonical_map(), "Clap": "Snare"})
    assert users["accuracy"] == 1.0


def test_core_metrics_measure_the_views_rule_not_the_top_fine_class() -> None:
    """A cymbal split between China and Crash is a Crash, though its top fine class is Ride: the figures
    evaluate and the cards report are those of the folders the views make."""
    labels = list(FINE_CLASSES)
    probabilities = np.zeros((1, len(labels)))
    for label, p in {"Ride": 0.4, "China": 0.35, "Crash": 0.25}.items():
        probabilities[0, labels.index(label)] = p
    report = core_report(["Crash"], probabilities, labels)
    assert report["accuracy"] == 1.0 and report["confusion"]["matrix"][0][0] == 1


def test_evaluate_collapses_labels_with_the_catalogs_canonical_map(tmp_path: Path) -> None:
    """`drumcat evaluate` reads canonical_map from the catalog when there is one (it used the built-in map)."""
    labeled = tmp_path / "labeled"
    for take in range(3):
        write_sample(labeled / "Snare" / f"s{take}.wav", render("Snare", seed=take))
    Catalog(tmp_path / "c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as db:  # this user files every sound under Tom
        db.execute("UPDATE canonical_map SET canonical = 'Tom'")
    report = json.loads(drumcat("--catalog", "c.db", "evaluate", "--json", "--quiet", "labeled",
                                cwd=tmp_path).stdout)
    support = {row["class"]: row["support"] for row in report["core"]["per_class"]}
    assert support == {"Tom": 3} and report["core"]["accuracy"] == 1.0


def test_rule_changes_for_one_command_are_rolled_back(classified: Path) -> None:
    catalog = Catalog(classified / "c.db")
    with rules_for_this_command(catalog, RuleChanges(threshold=0.99, dedup="off")) as conn:
        assert rows(conn, "SELECT threshold, dedup FROM rules") == [{"threshold": 0.99, "dedup": "off"}]
    with catalog.read() as conn:
        assert stored_rules(conn) == Rules()


def test_core_decisions_file_a_sound_under_the_core_class_its_fine_classes_add_up_to() -> None:
    from drumcat.taxonomy import core_decisions

    labels = ["China", "Crash", "Kick", "Clap", "Snare"]
    vectors = np.array([[0.5, 0.4, 0.1, 0.0, 0.0],    # Crash 0.9 against Kick 0.1
                        [0.0, 0.0, 0.2, 0.35, 0.45],  # Snare 0.45 against misc 0.35
                        [0.3, 0.25, 0.45, 0.0, 0.0]]) # the top fine class is Kick, but Crash adds up to 0.55
    decided = core_decisions(vectors, labels)
    assert decided.labels == ["Crash", "Snare", "Crash"]
    np.testing.assert_allclose(decided.probabilities, [0.9, 0.45, 0.55])
    np.testing.assert_allclose(decided.margins, [0.8, 0.1, 0.1])
    # A mapping may file a fine class under a folder of its own, or merge two: the sums follow it.
    merged = core_decisions(vectors, labels, {**default_canonical_map(labels), "Clap": "Snare"})
    assert merged.labels == ["Crash", "Snare", "Crash"]
    np.testing.assert_allclose(merged.margins, [0.8, 0.6, 0.1])
    split = core_decisions(vectors, labels, {**default_canonical_map(labels), "China": "China"})
    assert split.labels == ["China", "Snare", "Kick"]
    np.testing.assert_allclose(split.margins, [0.1, 0.1, 0.15])

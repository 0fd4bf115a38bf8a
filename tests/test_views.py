"""The reorganization rules as SQL views: each rule proven on a real catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.audio.synth import render, write_sample
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import RuleChanges, add_override, read_overrides_file, rules_for_this_command
from tests.helpers import record_predictions


@pytest.fixture
def sounds(tmp_path: Path, catalog: Catalog) -> dict[str, str]:
    """Five distinct sounds plus a duplicate; returns file name -> hash."""
    root = tmp_path / "archive"
    for index, name in enumerate(["kick", "china", "rim", "bongo", "quiet"]):
        write_sample(root / f"{name}.wav", render("Kick", seed=index))
    (root / "copies").mkdir()
    (root / "copies" / "kick-copy.wav").write_bytes((root / "kick.wav").read_bytes())
    scan(catalog, [root], ScanConfig(workers=1))
    with catalog.read() as conn:
        names = {Path(r["path"]).stem: r["hash"] for r in rows(conn, "SELECT path, hash FROM files")}
    record_predictions(catalog, {
        names["kick"]: {"Kick": 0.9, "Tom": 0.1},
        names["china"]: {"China": 0.8, "Crash": 0.2},
        names["rim"]: {"Rim": 0.7, "Snare": 0.3},
        names["bongo"]: {"Bongo": 0.95, "Conga": 0.05},
        names["quiet"]: {"Snare": 0.4, "Clap": 0.35, "Rim": 0.25},
    })
    return names


def folders(catalog: Catalog, view: str = "organized_default", changes: RuleChanges | None = None) -> dict[str, str]:
    with rules_for_this_command(catalog, changes or RuleChanges()) as conn:
        return {Path(r["src"]).stem: r["dest"].split("/")[0] for r in rows(conn, f"SELECT src, dest FROM {view}")}


def test_canonical_collapse_and_misc(catalog: Catalog, sounds: dict[str, str]) -> None:
    tree = folders(catalog)
    assert tree["kick-copy"] == "Kick"  # the duplicate pair is represented by its first path
    assert tree["china"] == "Crash"  # China -> Crash
    assert tree["rim"] == "Snare"  # Rim -> Snare
    assert tree["bongo"] == "misc"  # not a core class


def test_threshold_compares_the_probability_of_the_class_a_folder_is_named_for(
    catalog: Catalog, sounds: dict[str, str]
) -> None:
    assert folders(catalog)["quiet"] == "Snare"  # Snare 0.4 + Rim 0.25 = 0.65 >= 0.5
    assert folders(catalog, changes=RuleChanges(threshold=0.7))["quiet"] == "misc"
    assert folders(catalog, changes=RuleChanges(threshold=0.85))["china"] == "Crash"  # China 0.8 + Crash 0.2
    # A folder per fine class compares the fine class's own probability.
    assert folders(catalog, "organized_full")["quiet"] == "misc"  # Snare 0.4 < 0.5
    assert folders(catalog, "organized_full", RuleChanges(threshold=0.3))["quiet"] == "Snare"
    assert folders(catalog, changes=RuleChanges(allow_all=True, threshold=0.85))["china"] == "misc"


def test_a_sound_goes_to_the_core_class_its_fine_classes_add_up_to(tmp_path: Path, catalog: Catalog) -> None:
    write_sample(tmp_path / "archive" / "cymbal.wav", render("Crash", seed=1))
    scan(catalog, [tmp_path / "archive"], ScanConfig(workers=1))
    with catalog.read() as conn:
        digest = conn.exec_driver_sql("SELECT hash FROM files").scalar()
    record_predictions(catalog, {digest: {"Ride": 0.4, "China": 0.35, "Crash": 0.25}})

    def routed(changes: RuleChanges | None = None) -> dict:
        with rules_for_this_command(catalog, changes) as conn:
            return rows(conn, "SELECT label, core_label, core_confidence, folder, model_folder FROM routed")[0]

    # The top fine class is Ride, but China and Crash add up to 0.6.
    assert routed() == {"label": "Ride", "core_label": "Crash", "core_confidence": pytest.approx(0.6),
                        "folder": "Crash", "model_folder": "Crash"}
    # drumcat.toml's map for one command files China elsewhere: Ride 0.4 now leads, under the threshold.
    assert routed(RuleChanges(canonical_map={"China": "misc"}))["folder"] == "misc"
    assert routed(RuleChanges(canonical_map={"China": "misc"}, threshold=0.3))["folder"] == "Ride"
    assert routed()["folder"] == "Crash"  # nothing of it was kept


def test_target_label_filter(catalog: Catalog, sounds: dict[str, str]) -> None:
    tree = folders(catalog, changes=RuleChanges(target_labels=["Kick"]))
    assert tree["kick-copy"] == "Kick" and tree["china"] == "misc" and tree["rim"] == "misc"


def test_dedup_keeps_one_file_per_hash(catalog: Catalog, sounds: dict[str, str]) -> None:
    with catalog.read() as conn:
        picked = rows(conn, "SELECT src, copies FROM organized_default WHERE hash = :h", {"h": sounds["kick"]})
    assert len(picked) == 1 and picked[0]["copies"] == 2
    assert picked[0]["src"].endswith("archive/copies/kick-copy.wav")  # first path alphabetically
    assert len(folders(catalog, changes=RuleChanges(dedup="off"))) == 6


def test_override_wins_over_the_model_and_survives_a_move(
    tmp_path: Path, catalog: Catalog, sounds: dict[str, str]
) -> None:
    add_override(catalog, str(tmp_path / "archive" / "bongo.wav"), "Tom", note="it is a tom")
    assert folders(catalog)["bongo"] == "Tom"
    (tmp_path / "archive" / "bongo.wav").rename(tmp_path / "archive" / "renamed.wav")
    scan(catalog, [tmp_path / "archive"], ScanConfig(workers=1))
    assert folders(catalog)["renamed"] == "Tom"


def test_allow_all_gives_fine_folders(catalog: Catalog, sounds: dict[str, str]) -> None:
    tree = folders(catalog, view="organized_full")
    assert tree["china"] == "China" and tree["bongo"] == "Bongo" and tree["quiet"] == "misc"
    assert folders(catalog, changes=RuleChanges(allow_all=True))["rim"] == "Rim"


def test_per_command_changes_are_not_kept(catalog: Catalog, sounds: dict[str, str]) -> None:
    folders(catalog, changes=RuleChanges(threshold=0.99, target_labels=["Kick"]))
    with catalog.read() as conn:
        assert conn.exec_driver_sql("SELECT value FROM settings WHERE key='threshold'").scalar() == "0.5"
        assert conn.exec_driver_sql("SELECT count(*) FROM target_labels").scalar() == 6


def test_uncertain_lists_low_confidence_and_small_margins(catalog: Catalog, sounds: dict[str, str]) -> None:
    with catalog.read() as conn:
        listed = {Path(r["src"]).stem for r in rows(conn, "SELECT src FROM uncertain")}
    assert listed == {"quiet"}


def test_overrides_jsonl_round_trip(tmp_path: Path, catalog: Catalog, sounds: dict[str, str]) -> None:
    path = tmp_path / "overrides.jsonl"
    path.write_text(f'{{"hash": "{sounds["rim"]}", "correct_label": "Clap", "note": "clap, really"}}\n')
    with rules_for_this_command(catalog, RuleChanges(overrides=read_overrides_file(path))) as conn:
        label = conn.exec_driver_sql("SELECT label FROM classified WHERE hash=?", (sounds["rim"],)).scalar()
    assert label == "Clap"


def test_override_with_unknown_label_is_refused(catalog: Catalog, sounds: dict[str, str]) -> None:
    from drumcat.errors import DrumcatError

    with pytest.raises(DrumcatError, match="unknown label 'Cowbel'"):
        add_override(catalog, sounds["kick"], "Cowbel")


def test_the_review_order_puts_the_least_sure_folder_first(tmp_path: Path, catalog: Catalog) -> None:
    """China 0.45 against Crash 0.40 is a small top-two margin but a sure Crash folder; Kick 0.7 against
    Tom 0.3 is the sound to ask about. Storing a map that files Tom under Kick re-ranks at once."""
    from drumcat.storage.rules import store_rules

    root = tmp_path / "archive"
    for index, name in enumerate(["cymbal", "drum"]):
        write_sample(root / f"{name}.wav", render("Kick", seed=index))
    scan(catalog, [root], ScanConfig(workers=1))
    with catalog.read() as conn:
        names = {Path(r["path"]).stem: r["hash"] for r in rows(conn, "SELECT path, hash FROM files")}
    record_predictions(catalog, {names["cymbal"]: {"China": 0.45, "Crash": 0.40, "Kick": 0.15},
                                 names["drum"]: {"Kick": 0.7, "Tom": 0.3}})

    def queue() -> list[tuple[str, float]]:
        with catalog.read() as conn:
            return [(Path(r["src"]).stem, round(r["core_margin"], 4))
                    for r in rows(conn, "SELECT src, core_margin FROM review_queue")]

    assert queue() == [("drum", 0.4), ("cymbal", 0.7)]
    store_rules(catalog, RuleChanges(canonical_map={"Tom": "Kick"}))
    assert queue() == [("cymbal", 0.7), ("drum", 1.0)]

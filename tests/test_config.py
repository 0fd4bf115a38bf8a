"""drumcat.toml: defaults, overrides, and one-line errors naming the bad key or file."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.config import load_config
from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog
from drumcat.storage.rules import Rules, config_rule_changes, stored_rules

REPO = Path(__file__).resolve().parent.parent


def test_shipped_drumcat_toml_equals_the_documented_defaults() -> None:
    shipped = load_config(REPO / "drumcat.toml")
    assert shipped.scan.formats == ["wav", "aif", "aiff", "flac", "ogg", "mp3"]
    assert shipped.scan.hash_algorithm == "sha256"
    # The shipped file sets no rule: each command then applies the catalog's rules, unchanged.
    assert config_rule_changes(shipped).set_names() == []
    assert shipped.catalog_path == REPO / "drumcat.db"


def test_the_documented_rule_defaults_are_the_catalogs(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    with catalog.read() as conn:
        assert stored_rules(conn) == Rules()


def test_the_old_name_misc_threshold_still_sets_the_threshold(tmp_path: Path) -> None:
    path = tmp_path / "drumcat.toml"
    path.write_text("[taxonomy]\nmisc_threshold = 0.7\n")
    assert load_config(path).taxonomy.threshold == 0.7


def test_values_are_read_and_paths_resolved_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "drumcat.toml"
    path.write_text('[catalog]\npath = "my.db"\n[taxonomy]\nthreshold = 1\n')
    config = load_config(path)
    assert config.catalog_path == tmp_path / "my.db"
    assert config.taxonomy.threshold == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scan]\nformat = ['wav']\n", "scan.format: unknown key"),
        ("[scan]\nworkers = 'two'\n", "scan.workers: expected int"),
        ("[taxonomy]\ntarget_labels = 'Kick'\n", "taxonomy.target_labels: expected a list"),
        ("[nonsense]\nx = 1\n", r"unknown section \[nonsense\]"),
        ("[scan\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "drumcat.toml"
    path.write_text(text)
    with pytest.raises(DrumcatError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DrumcatError, match="nope.toml: config file not found"):
        load_config(tmp_path / "nope.toml")

"""`drumcat kit`: SFZ and Hydrogen kits from a view, parsed back, validated, never outside their folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf

from drumcat.audio.synth import render, write_sample
from drumcat.commands.kit import SLOTS, build_kit, choose_slots
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog
from tests.helpers import record_predictions

HYDROGEN_XSD = Path("/usr/share/hydrogen/data/xsd/drumkit.xsd")


@pytest.fixture
def kit_catalog(tmp_path: Path, catalog: Catalog) -> Catalog:
    """A kick, a snare, two hats (short and long), three toms (low to high) and a crash, as MP3, WAV, FLAC."""
    root = tmp_path / "archive"
    sounds = {"kick.mp3": ("Kick", 1.0), "snare.wav": ("Snare", 1.0), "hat-short.wav": ("Hihat", 0.15),
              "hat-long.flac": ("Hihat", 1.0), "tom-a.wav": ("Tom", 1.0), "tom-b.wav": ("Tom", 1.0),
              "tom-c.wav": ("Tom", 1.0), "crash.wav": ("Crash", 1.0), "kick-weak.wav": ("Kick", 1.0)}
    for index, (name, (instrument, seconds)) in enumerate(sounds.items()):
        audio = render(instrument, seed=index)[: int(seconds * 44_100)]
        write_sample(root / name, audio)
    scan(catalog, [root], ScanConfig(workers=1))
    with catalog.read() as conn:
        names = {Path(p).name: h for h, p in conn.exec_driver_sql("SELECT hash, path FROM files")}
    record_predictions(catalog, {names[n]: {label: 0.9 if n != "kick-weak.wav" else 0.6}
                                 for n, (label, _) in sounds.items()})
    return catalog


def parse_sfz(path: Path) -> dict[int, str]:
    """key -> sample file, read back from the regions of an SFZ file."""
    regions = {}
    for line in path.read_text().splitlines():
        if line.startswith("<region>"):
            sample = re.search(r"sample=(\S+)", line).group(1)
            regions[int(re.search(r"key=(\d+)", line).group(1))] = sample
    return regions


def test_an_sfz_kit_maps_each_class_to_its_general_midi_key(kit_catalog: Catalog, tmp_path: Path) -> None:
    summary = build_kit(kit_catalog, "organized_full", tmp_path / "kits" / "mine", kit_format="sfz")
    folder = Path(summary.out)
    regions = parse_sfz(folder / "mine.sfz")
    assert sorted(regions) == sorted(SLOTS[s] for s in ("kick", "snare", "closed_hat", "open_hat", "low_tom",
                                                        "mid_tom", "high_tom", "crash"))
    for sample in regions.values():
        assert sf.info(str(folder / "samples" / sample)).frames > 0  # copied and readable
    assert regions[36] == "kick.wav"  # the MP3 was written as WAV
    by_slot = {s["slot"]: Path(s["src"]).name for s in summary.slots}
    assert by_slot["kick"] == "kick.mp3"  # the most confident kick, not the 0.6 one
    assert (by_slot["closed_hat"], by_slot["open_hat"]) == ("hat-short.wav", "hat-long.flac")


def test_toms_are_ordered_low_to_high_by_pitch(tmp_path: Path) -> None:
    import numpy as np

    for name, hz in (("high.wav", 300.0), ("low.wav", 90.0), ("mid.wav", 160.0)):
        t = np.arange(int(0.4 * 22_050)) / 22_050
        sf.write(str(tmp_path / name), (np.sin(2 * np.pi * hz * t) * np.exp(-6 * t)).astype("float32"), 22_050)
    slots = choose_slots([{"src": str(tmp_path / n), "label": "Tom", "confidence": 0.9}
                          for n in ("high.wav", "low.wav", "mid.wav")])
    assert [(s.slot, s.src.name) for s in slots] == [("low_tom", "low.wav"), ("mid_tom", "mid.wav"),
                                                      ("high_tom", "high.wav")]


@pytest.mark.skipif(not HYDROGEN_XSD.is_file(), reason="Hydrogen's schema comes with Debian's hydrogen-data "
                                                      "package (`make test` installs it as root)")
def test_a_hydrogen_kit_is_valid_against_hydrogens_own_schema(kit_catalog: Catalog, tmp_path: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    summary = build_kit(kit_catalog, "organized_full", tmp_path / "h2kit", kit_format="hydrogen", name="My <Kit>")
    drumkit = Path(summary.out) / "drumkit.xml"
    xmlschema.XMLSchema(str(HYDROGEN_XSD)).validate(str(drumkit))
    text = drumkit.read_text()
    assert "<name>My &lt;Kit&gt;</name>" in text
    for layer in re.findall(r"<filename>(.+?)</filename>", text):
        assert (drumkit.parent / layer).is_file()


def test_a_view_can_name_the_slots(kit_catalog: Catalog, tmp_path: Path) -> None:
    with kit_catalog.connect() as conn:
        conn.exec_driver_sql("CREATE VIEW my_kit AS SELECT src, 'cowbell' AS slot FROM organized_full "
                             "WHERE src LIKE '%crash.wav' UNION ALL SELECT src, '60' FROM organized_full "
                             "WHERE src LIKE '%snare.wav'")
    summary = build_kit(kit_catalog, "my_kit", tmp_path / "named")
    assert {(s["slot"], s["key"]) for s in summary.slots} == {("cowbell", 56), ("key_60", 60)}


def test_kit_refuses_a_folder_it_did_not_make_and_writes_only_inside_its_own(kit_catalog: Catalog,
                                                                            tmp_path: Path) -> None:
    mine = tmp_path / "music"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(DrumcatError, match="not a kit drumcat built"):
        build_kit(kit_catalog, "organized_full", mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    before = sorted(p.name for p in tmp_path.iterdir())
    build_kit(kit_catalog, "organized_full", tmp_path / "kit")
    build_kit(kit_catalog, "organized_full", tmp_path / "kit")  # a kit it built: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "kit"])


def test_kit_writes_nothing_into_a_scanned_archive(kit_catalog: Catalog, tmp_path: Path) -> None:
    """Its samples would be catalogued as new sounds by the next scan, and the archive is the user's."""
    archive = tmp_path / "archive"
    before = sorted(p.name for p in archive.iterdir())
    for out in (archive / "kit", tmp_path):  # inside the archive, and around it
        with pytest.raises(DrumcatError, match="scanned archive"):
            build_kit(kit_catalog, "organized_full", out)
    assert sorted(p.name for p in archive.iterdir()) == before


def test_a_view_without_the_kit_columns_is_one_clear_error(kit_catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(DrumcatError, match="not a kit view: it needs a src column and a slot or label"):
        build_kit(kit_catalog, "unique_files", tmp_path / "x")
    with pytest.raises(DrumcatError, match="--format 'gm'"):
        build_kit(kit_catalog, "organized_full", tmp_path / "x", kit_format="gm")


def test_a_kit_holding_a_users_file_is_not_replaced(kit_catalog: Catalog, tmp_path: Path) -> None:
    """Rebuilding a kit replaced its folder whole, with whatever the user had put in it since."""
    for kit_format in ("sfz", "hydrogen"):
        out = tmp_path / f"kit-{kit_format}"
        build_kit(kit_catalog, "organized_full", out, kit_format=kit_format)
        build_kit(kit_catalog, "organized_full", out, kit_format=kit_format)  # only its own files: replaced
        (out / "my edit.sfz").write_text("mine")
        with pytest.raises(DrumcatError, match="my edit.sfz"):
            build_kit(kit_catalog, "organized_full", out, kit_format=kit_format)
        assert (out / "my edit.sfz").read_text() == "mine"

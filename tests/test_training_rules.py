"""The training set's label rules and the metrics written into the model card."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumcat.model.metrics import apply_temperature, expected_calibration_error, fit_temperature, per_class_table
from drumcat.model.train.labels import (
    FILE_EXCEPTIONS,
    FONT_KEY_OVERRIDES,
    GM_KEYS,
    label_by_name,
    label_for_dirt,
    label_for_font_key,
    label_for_instrument,
    label_for_sonic_pi,
    label_for_tidal,
    name_contradicts,
    with_exceptions,
)
from drumcat.taxonomy import CORE_CLASSES, FINE_CLASSES, default_canonical_map


@pytest.mark.parametrize(("name", "label"), [
    ("Kick (Tama Superstar 22\")", "Kick"), ("BassDrum", "Kick"), ("c3 - bass drum 1", "Kick"),
    ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "Snare"), ("Pearl Side Stick", "Rim"),
    ("Rim Click (Pearl)", "Rim"), ("Closed HH", "Hihat"), ("Hi-Hat Pedal (Paiste)", "Hihat"),
    ("Ride Bell (Custom)", "Ride"), ("ride-cup", "Ride"), ("China (Paiste Alpha 18\")", "China"),
    ("Zildjian Splash", "Splash"), ("crash16inch", "Crash"), ("Tom Low", "Tom"), ("tomhi2", "Tom"),
    ("Woodblock Hi", "Perc"), ("Sangban1 Bell Hit", "Bell"), ("Zap 1", "FX"),
])
def test_instrument_names_map_to_fine_classes(name: str, label: str) -> None:
    assert label_for_instrument(name) == label


@pytest.mark.parametrize("name", ["Crash/Ride (Paiste Rude 18\")", "ride-crash20inch", "Snare Roll", "Cajon Slap",
                                  "Sabian Hat Choke", "Drum 1", "17", "Finger Snaps", "redo super opaco"])
def test_ambiguous_names_are_skipped_not_guessed(name: str) -> None:
    assert label_for_instrument(name) is None


@pytest.mark.parametrize(("label", "stem"), [
    ("Kick", "86335__zgump__tom-0105"), ("Ride", "Crash-03"), ("Ride", "Hat Open"), ("Crash", "crash16i__ride_cup4"),
    ("Kick", "MPC1000_HH-BD_TL"), ("Hihat", "011_hh3snare1"), ("Cowbell", "Snarepop"),
])
def test_a_file_whose_name_names_another_core_class_contradicts_its_label(label: str, stem: str) -> None:
    assert name_contradicts(label, stem)


@pytest.mark.parametrize(("label", "stem"), [
    ("Crash", "China"), ("Crash", "Cymbal-02"), ("Rim", "Rimshot"), ("Kick", "Bassdrum-02"), ("Hihat", "Hat Open-03"),
    ("Tom", "Tom L"), ("Shaker", "Cabasa"), ("Clap", "Zap 1"), ("Snare", "SNAREDRUM_047"), ("Kick", "BT3A0D7"),
])
def test_a_name_of_the_same_core_class_generic_or_unknown_does_not(label: str, stem: str) -> None:
    assert not name_contradicts(label, stem)


def test_the_collection_readers_skip_a_file_whose_name_contradicts_its_folder(tmp_path: Path) -> None:
    from drumcat.model.train.sources import dirt_files, tidal_files

    tone = np.sin(np.linspace(0, 200, 2205)).astype(np.float32)
    for relative in ["machines/Linn9000/linn9000-rd/Ride-01.wav", "machines/Linn9000/linn9000-rd/Crash-03.wav",
                     "hc/HHCD0.wav", "hc/HHCD2 snare.wav"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / relative, tone, 22050)
    skipped: Counter = Counter()
    tidal = [(item.path.name, item.label) for item in tidal_files(tmp_path, skipped)]
    dirt = [(item.path.name, item.label) for item in dirt_files(tmp_path, skipped)]
    assert tidal == [("Ride-01.wav", "Ride")] and dirt == [("HHCD0.wav", "Hihat")]
    assert sorted(skipped) == ["dirt: hc/HHCD2 snare.wav (its name says another class)",
                               "tidal: linn9000-rd/Crash-03.wav (its name says another class)"]


@pytest.mark.parametrize(("suffix", "stem", "label"), [
    ("perc", "Conga H", "Conga"), ("perc", "Hicongao", "Conga"), ("perc", "Congo", "Conga"), ("perc", "MC25", "Conga"),
    ("perc", "CL", "Clave"), ("perc", "Claves-02", "Clave"), ("perc", "Agogo Bell", "Agogo"),
    ("perc", "Lobongoo", "Bongo"), ("perc", "Timb1", "Timbale"), ("perc", "Hitimbal", "Timbale"),
    ("perc", "Tria-1", "Triangle"), ("perc", "Mutetria", "Triangle"), ("perc", "Shortgui", "Guiro"),
    ("perc", "Guirro-02", "Guiro"), ("perc", "Qijada", "Vibraslap"), ("perc", "Wblk", "Perc"),
    ("perc", "Wood Block H", "Perc"), ("misc", "Cuical-01", "Cuica"), ("misc", "Woodblock-02", "Perc"),
    ("perc", "Whistle", None), ("perc", "Bell-01", None), ("perc", "Fingersanp", None), ("perc", "Quid", None),
    ("perc", "Toma H-01", None), ("perc", "Click-03", None), ("misc", "Square Kick-01", None),
    ("fx", "FX_003", None), ("misc", "Synth Cymbal", None),
    ("bd", "BD0010", "Kick"), ("sh", "Maracas", "Maracas"), ("cr", "China", "China"), ("cr", "Ride", "Crash"),
])
def test_a_tidal_file_in_a_folder_of_anything_is_taken_only_by_a_hand_percussion_name(
        suffix: str, stem: str, label: str | None) -> None:
    assert label_for_tidal(suffix, stem) == label


@pytest.mark.parametrize(("folder", "stem", "label"), [
    ("ab", "000_ab2closedhh", "Hihat"), ("db", "dbs12kick2", "Kick"), ("hardcore", "010_hcsnare1", "Snare"),
    ("jungle", "jungle4ride", "Ride"), ("jungle", "jungle4perc1", None), ("jungle", "jungle4hit2", None),
    ("odx", "003_DXRimshot", "Rim"), ("odx", "014_DX_Ax_Hat", "Hihat"), ("odx", "002_DXShaker", "Shaker"),
    ("sequential", "000_Tom Clap", "Clap"), ("sequential", "006_Tom Tom1", "Tom"),
    ("incoming", "000_Mattel  Snare", "Snare"), ("incoming", "002_Mattel Cymbal", None),
    ("voodoo", "002_VoodooRim", "Rim"), ("voodoo", "000_VoodooBass", None), ("haw", "hawaiian-sd", "Snare"),
    ("ifdrums", "ignorebd", "Kick"), ("peri", "000_bd", "Kick"), ("peri", "001_bd-rev", None),
    ("peri", "003_hhx", "Hihat"), ("peri", "004_ksh", None), ("auto", "003_cymrev", None),
    ("auto", "002_break-sd", "Snare"), ("feel", "BD 04 d", "Kick"), ("feel", "Sd 139", "Snare"),
    ("future", "002_Bd1_w", "Kick"), ("future", "007_MKD03", None), ("ul", "004_ulnoisey-kick", "Kick"),
    ("ul", "005_ulnoisey-run", None), ("glitch", "005_P1", None), ("glitch", "001_CB", "Cowbell"),
    ("short", "sampleoftheday-gtt-snare-drum-010", "Snare"), ("short", "sampleoftheday-gtt-fx-synth-009", None),
    ("v", "004_v_snare01", "Snare"), ("dr", "000_002", None), ("stomp", "000_0", None), ("808", "000_BD", "Kick"),
    ("hh", "000_hh3closedhh", "Hihat"), ("hh", "005_hh3kick1", "Kick"), ("hh", "011_hh3snare1", "Snare"),
    ("hh", "002_hh3hit1", None), ("hh", "008_hh3rerc1", None), ("house", "003_HH", "Hihat"),
])
def test_a_dirt_kit_folder_is_labeled_by_its_file_names_without_the_kits_prefix(
        folder: str, stem: str, label: str | None) -> None:
    assert label_for_dirt(folder, stem) == label


def test_a_dirt_kit_named_after_a_drum_does_not_contradict_its_files(tmp_path: Path) -> None:
    from drumcat.model.train.sources import dirt_files

    tone = np.sin(np.linspace(0, 200, 2205)).astype(np.float32)
    (tmp_path / "sequential").mkdir()
    for name in ["000_Tom Clap.wav", "004_Tom Openhat.wav", "006_Tom Tom1.wav"]:
        sf.write(tmp_path / "sequential" / name, tone, 22050)
    skipped: Counter = Counter()
    found = [(item.path.name, item.label, item.kit) for item in dirt_files(tmp_path, skipped)]
    assert found == [("000_Tom Clap.wav", "Clap", "machine:SequentialCircuitsTom"),
                     ("004_Tom Openhat.wav", "Hihat", "machine:SequentialCircuitsTom"),
                     ("006_Tom Tom1.wav", "Tom", "machine:SequentialCircuitsTom")]
    assert not skipped


@pytest.mark.parametrize(("label", "stem", "expected"), [
    ("Hihat", "Hat Reverse", "Reverse"), ("Kick", "Bassdrum Reverse", "Reverse"),
    ("Hihat", "zHat Closed Reversed", "Reverse"), ("Crash", "zCrash Reverse", "Reverse"),
    ("Crash", "Crash-Reverb", "Crash"), ("Snare", "SNAREDRUM_047", "Snare"),
])
def test_a_file_named_as_played_backwards_is_the_reverse_class(label: str, stem: str, expected: str) -> None:
    assert label_by_name(label, stem) == expected


def test_the_collection_readers_apply_the_per_file_exceptions(tmp_path: Path) -> None:
    from drumcat.model.train.sources import dirt_files, tidal_files

    tone = np.sin(np.linspace(0, 200, 2205)).astype(np.float32)
    for relative in ["machines/EmuDrumulator/emudrumulator-cr/Cymbal.wav", "house/003_HH.wav", "house/004_OH.wav",
                     "jazz/004_OH.wav"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / relative, tone, 22050)
    skipped: Counter = Counter()
    tidal = [(item.path.name, item.label) for item in tidal_files(tmp_path, skipped)]
    dirt = [(item.path.name, item.label) for item in dirt_files(tmp_path, skipped)]
    assert tidal == [("Cymbal.wav", "Ride")]  # its folder says crash; the Drumulator's one cymbal is a ride
    assert dirt == [("003_HH.wav", "Hihat")]
    assert skipped == Counter({"dirt: house": 1, "dirt: jazz": 1})


def test_a_per_file_exception_names_its_sound_and_leaves_the_others_to_the_rules() -> None:
    assert with_exceptions("hydrogen", "ElectricEmpireKit", "Hat Ring 2", "Hihat") is None
    assert with_exceptions("hydrogen", "ElectricEmpireKit", "Hat Ring 1", "Hihat") == "Hihat"
    assert with_exceptions("hydrogen", "OtherKit", "Hat Ring 2", "Hihat") == "Hihat"
    assert with_exceptions("Dirt-Samples", "house", "004_OH", "Hihat") is None


def test_the_per_file_exceptions_name_known_collections_and_classes() -> None:
    from drumcat.model.train.sources import COLLECTIONS

    assert {collection for collection, _, _ in FILE_EXCEPTIONS} <= {"hydrogen"} | {c.name for c in COLLECTIONS}
    assert {label for label in FILE_EXCEPTIONS.values() if label} <= set(FINE_CLASSES)


def test_timgm6mb_key_51_is_skipped_where_a_filter_snap_layers_over_its_ride() -> None:
    assert label_for_font_key("TimGM6mb", 0, 51) == "Ride"
    assert all(label_for_font_key("TimGM6mb", preset, 51) is None for preset in (24, 25, 48))


def test_the_collection_readers_file_a_reversed_hit_under_reverse(tmp_path: Path) -> None:
    from drumcat.model.train.sources import dirt_files, tidal_files

    tone = np.sin(np.linspace(0, 200, 2205)).astype(np.float32)
    for relative in ["machines/AlesisSR16/alesissr16-oh/Hat Open.wav",
                     "machines/AlesisSR16/alesissr16-oh/Hat Reverse.wav", "hc/HHCD0.wav", "hc/HHCD2reverse.wav"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / relative, tone, 22050)
    skipped: Counter = Counter()
    tidal = [(item.path.name, item.label) for item in tidal_files(tmp_path, skipped)]
    dirt = [(item.path.name, item.label) for item in dirt_files(tmp_path, skipped)]
    assert tidal == [("Hat Open.wav", "Hihat"), ("Hat Reverse.wav", "Reverse")]
    assert dirt == [("HHCD0.wav", "Hihat"), ("HHCD2reverse.wav", "Reverse")]
    assert not skipped


def test_a_hit_already_played_backwards_is_never_reversed_again() -> None:
    from drumcat.model.train.dataset import Clip, reversed_clips

    ramp = np.linspace(0.0, 1.0, 11025, dtype=np.float32) * np.sin(np.arange(11025, dtype=np.float32))
    clips = [Clip(ramp, "Reverse", "tidal-drum-machines", "machine:AlesisSR16", "Hat Reverse.wav"),
             Clip(ramp[::-1].copy(), "Hihat", "tidal-drum-machines", "machine:AlesisSR16", "Hat Open.wav")]
    made = list(reversed_clips(clips, {"train": 5}))
    assert [clip.origin for clip in made] == ["reversed Hat Open.wav"]


def test_sonic_pi_names() -> None:
    assert label_for_sonic_pi("bd_808") == "Kick"
    assert label_for_sonic_pi("drum_cymbal_pedal") == "Hihat"
    assert label_for_sonic_pi("elec_triangle") == "Triangle"
    assert label_for_sonic_pi("loop_amen") is None and label_for_sonic_pi("ambi_choir") is None


def test_a_kit_that_departs_from_the_gm_map_is_labeled_by_what_it_plays() -> None:
    # The Orchestra kit tunes timpani where GM has hi-hats and cymbals; the standard kit follows the map.
    assert label_for_font_key("FluidR3_GM", 48, 42) == "Timpani" and label_for_font_key("FluidR3_GM", 0, 42) == "Hihat"
    assert label_for_font_key("FluidR3_GM", 48, 59) == "Crash"  # an orchestral crash where GM has a ride
    assert label_for_font_key("FluidR3_GM", 40, 39) == "Snare"  # a brush slap where GM has a clap
    # AVL: a hat swish on GM's tom key and a choke on its vibraslap key are skipped; maracas on a bongo key.
    assert label_for_font_key("Red_Zeppelin_4_LV2", 0, 48) is None
    assert label_for_font_key("Black_Pearl_4_LV2", 0, 58) is None
    assert label_for_font_key("Black_Pearl_4_LV2", 0, 61) == "Maracas"
    assert label_for_font_key("Black_Pearl_4_LV2", 0, 49) == "Crash"
    assert label_for_font_key("FluidR3_GM", 0, 71) is None  # whistles have no class anywhere


def test_every_rule_targets_a_taxonomy_class() -> None:
    assert set(GM_KEYS.values()) <= set(FINE_CLASSES)
    overridden = {label for keys in FONT_KEY_OVERRIDES.values() for label in keys.values()}
    assert overridden - {None} <= set(FINE_CLASSES)
    assert len(FINE_CLASSES) == 34 == len(set(FINE_CLASSES))
    mapping = default_canonical_map()
    assert {mapping[c] for c in ("China", "Splash", "Cymbal", "Sizzle")} == {"Crash"}
    assert mapping["Rim"] == "Snare" and mapping["Timbale"] == mapping["Timpani"] == "Tom"
    assert all(mapping[c] == c for c in CORE_CLASSES) and mapping["Cowbell"] == "misc"


def test_calibration_error_and_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 4  # an overconfident model
    targets = np.array([rng.choice(5, p=np.exp(row / 4) / np.exp(row / 4).sum()) for row in logits])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    temperature = fit_temperature(probs, targets)
    assert 3.0 <= temperature <= 5.0  # the data were drawn at temperature 4
    before = expected_calibration_error(probs.max(1), probs.argmax(1) == targets)
    calibrated = apply_temperature(probs, temperature)
    after = expected_calibration_error(calibrated.max(1), calibrated.argmax(1) == targets)
    assert after < before / 2
    assert (calibrated.argmax(1) == probs.argmax(1)).all()  # scaling never changes the top class


def test_per_class_table() -> None:
    table = {row["class"]: row for row in per_class_table(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])}
    assert table["a"] == {"class": "a", "precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert "c" not in table

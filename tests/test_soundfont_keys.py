"""The soundfont reader the label review uses, on a small SoundFont 2 file written here."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from drumcat.model.train.soundfont_keys import kit_keys


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _name(text: str) -> bytes:
    return text.encode().ljust(20, b"\0")


def write_orchestra_font(path: Path) -> None:
    """Bank 128 preset 48 with one instrument: keys 41-53 play "Timpani 2", key 57 "Orchcrash"; and a
    preset 0 on another key, which must not leak into preset 48."""
    key_range = 43

    def zone(low: int, high: int, sample: int) -> list[tuple[int, int]]:
        return [(key_range, low | high << 8), (53, sample)]

    instrument_zones = [zone(41, 53, 0), zone(57, 57, 1), zone(36, 36, 2)]
    igen = [g for z in instrument_zones[:2] for g in z] + instrument_zones[2] + [(0, 0)]
    ibag = [(0, 0), (2, 0), (4, 0), (6, 0)]  # instrument 0: zones 0-1; instrument 1: zone 2; terminal
    inst = [(_name("Orchestra"), 0), (_name("Standard"), 2), (_name("EOI"), 3)]
    pgen = [(41, 0), (41, 1), (0, 0)]
    pbag = [(0, 0), (1, 0), (2, 0)]
    phdr = [(_name("Orchestra Kit"), 48, 128, 0, 0, 0, 0), (_name("Standard"), 0, 128, 1, 0, 0, 0),
            (_name("EOP"), 0, 0, 2, 0, 0, 0)]
    shdr = [(_name(n), 0, 0, 0, 0, 22050, 60, 0, 0, 1) for n in ("Timpani 2", "Orchcrash", "Std Kick", "EOS")]
    pdta = b"pdta" + b"".join([
        _chunk(b"phdr", b"".join(struct.pack("<20sHHHIII", *r) for r in phdr)),
        _chunk(b"pbag", b"".join(struct.pack("<HH", *r) for r in pbag)),
        _chunk(b"pmod", b"\0" * 10),
        _chunk(b"pgen", b"".join(struct.pack("<HH", *r) for r in pgen)),
        _chunk(b"inst", b"".join(struct.pack("<20sH", *r) for r in inst)),
        _chunk(b"ibag", b"".join(struct.pack("<HH", *r) for r in ibag)),
        _chunk(b"imod", b"\0" * 10),
        _chunk(b"igen", b"".join(struct.pack("<HH", *r) for r in igen)),
        _chunk(b"shdr", b"".join(struct.pack("<20sIIIIIBbHH", *r) for r in shdr)),
    ])
    body = b"sfbk" + _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1))) + _chunk(b"LIST", pdta)
    path.write_bytes(_chunk(b"RIFF", body))


def test_kit_keys_name_what_each_key_plays(tmp_path: Path) -> None:
    font = tmp_path / "Orchestra.sf2"
    write_orchestra_font(font)
    keys = kit_keys(font, bank=128, preset=48)
    assert sorted(keys) == [*range(41, 54), 57]
    assert keys[42] == ["Orchestra: Timpani 2"] and keys[57] == ["Orchestra: Orchcrash"]
    assert kit_keys(font, bank=128, preset=0) == {36: ["Standard: Std Kick"]}
    assert kit_keys(font, bank=0, preset=48) == {}


def test_a_file_that_is_not_a_soundfont_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "notes.wav"
    other.write_bytes(_chunk(b"RIFF", b"WAVE" + _chunk(b"fmt ", b"\0" * 16)))
    with pytest.raises(ValueError, match="not a SoundFont"):
        kit_keys(other, bank=128, preset=0)


def test_one_sound_on_one_key_has_one_label_in_every_preset_of_a_font() -> None:
    """Where the Debian fonts are installed (`make dataset` installs them): a sample a preset's override
    relabels or skips must get the same treatment in every other preset that plays it on that key, or a
    kit variant brings the wrong label back (Brush 1 and Brush 2 beside Brush, say)."""
    from drumcat.model.train.dataset import GM_DRUM_FONTS
    from drumcat.model.train.labels import label_for_font_key

    fonts = [font for font in GM_DRUM_FONTS if font.path.exists()]
    if not fonts:
        pytest.skip("no GM soundfont installed (fluid-soundfont-gm, timgm6mb-soundfont, ...)")
    for font in fonts:
        labels_of_sound: dict[tuple[int, str], set[str | None]] = {}
        for preset in font.presets:
            for key, names in kit_keys(font.path, bank=128, preset=preset).items():
                sound = (key, " | ".join(names))
                labels_of_sound.setdefault(sound, set()).add(label_for_font_key(font.path.stem, preset, key))
        disagreeing = {sound: labels for sound, labels in labels_of_sound.items() if len(labels) > 1}
        assert not disagreeing, f"{font.path.name}: {disagreeing}"

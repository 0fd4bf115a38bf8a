"""What a soundfont kit plays on each key: its instrument and sample names, for reviewing the labels.

The training set labels a rendered soundfont key by the General MIDI percussion map, but a kit may put
something else there: the GS Orchestra kit tunes timpani on the tom, hi-hat and cymbal keys, the brush
kits play a brush slap where GM has a clap, and the AVL kits put chokes and a hi-hat swish on GM's tom and
vibraslap keys. This reads the font's own names (the RIFF `pdta` chunk of an .sf2 or .sf3: presets ->
instruments -> samples, each zone with its key range), so every departure can be seen and written into
labels.FONT_KEY_OVERRIDES, where the dataset builder reads it.

    python -m drumcat.model.train.soundfont_keys /usr/share/sounds/sf2/FluidR3_GM.sf2 --bank 128 --preset 48
"""

from __future__ import annotations

import argparse
import struct
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from drumcat.model.train.labels import label_for_font_key

_INSTRUMENT, _SAMPLE_ID, _KEY_RANGE = 41, 53, 43  # SoundFont 2 generator operators


def _chunks(data: bytes, offset: int, end: int, padded: bool) -> list[tuple[bytes, int, int]]:
    found = []
    while offset + 8 <= end:
        kind, size = struct.unpack_from("<4sI", data, offset)
        found.append((kind, offset + 8, size))
        offset += 8 + size + (size & 1 if padded else 0)
    return found


@lru_cache(maxsize=4)
def _preset_data(font: Path) -> dict[str, bytes]:
    """The `pdta` sub-chunks (a few kB), read once per font: a review asks for every preset of a font, and
    the font is tens of MB of samples. RIFF pads odd-sized chunks to even; some .sf3 writers do not, so
    try both."""
    data = font.read_bytes()
    for padded in (True, False):
        for kind, offset, size in _chunks(data, 12, len(data), padded):
            if kind == b"LIST" and data[offset:offset + 4] == b"pdta":
                return {sub.decode(): data[o:o + s] for sub, o, s in _chunks(data, offset + 4, offset + size, padded)}
    raise ValueError("no preset data (pdta) in this file: not a SoundFont 2 or 3")


def _records(blob: bytes, layout: str) -> list[tuple]:
    width = struct.calcsize(layout)
    return [struct.unpack_from(layout, blob, i) for i in range(0, len(blob) - width + 1, width)]


def _name(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1")


def _zones(bags: list[tuple], generators: list[tuple], first: int, last: int) -> list[dict[int, int]]:
    return [{op: amount for op, amount in generators[bags[b][0]:bags[b + 1][0]]} for b in range(first, last)]


def _key_range(zone: dict[int, int]) -> range:
    packed = zone.get(_KEY_RANGE, 127 << 8)
    return range(packed & 0xFF, (packed >> 8) + 1)


def kit_keys(font: Path, bank: int, preset: int) -> dict[int, list[str]]:
    """Key -> sorted "instrument: sample" names the preset plays there (every velocity layer)."""
    data = _preset_data(font)
    presets = _records(data["phdr"], "<20sHHHIII")
    preset_bags, preset_gens = _records(data["pbag"], "<HH"), _records(data["pgen"], "<HH")
    instruments = _records(data["inst"], "<20sH")
    instrument_bags, instrument_gens = _records(data["ibag"], "<HH"), _records(data["igen"], "<HH")
    samples = _records(data["shdr"], "<20sIIIIIBbHH")
    keys: dict[int, set[str]] = defaultdict(set)
    for index, header in enumerate(presets[:-1]):
        if (header[2], header[1]) != (bank, preset):
            continue
        for preset_zone in _zones(preset_bags, preset_gens, header[3], presets[index + 1][3]):
            if _INSTRUMENT not in preset_zone:
                continue  # a global zone
            number = preset_zone[_INSTRUMENT]
            allowed = set(_key_range(preset_zone))
            for zone in _zones(instrument_bags, instrument_gens, instruments[number][1], instruments[number + 1][1]):
                if _SAMPLE_ID in zone:
                    for key in allowed.intersection(_key_range(zone)):
                        keys[key].add(f"{_name(instruments[number][0])}: {_name(samples[zone[_SAMPLE_ID]][0])}")
    return {key: sorted(names) for key, names in sorted(keys.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("font", type=Path)
    parser.add_argument("--bank", type=int, default=128, help="128: GM drum kits; the AVL fonts use 0")
    parser.add_argument("--preset", type=int, default=0)
    args = parser.parse_args()
    for key, names in kit_keys(args.font, args.bank, args.preset).items():
        label = label_for_font_key(args.font.stem, args.preset, key)
        print(f"{key:3d}  {label or '(skipped)':<12} {' | '.join(names)}")


if __name__ == "__main__":
    main()

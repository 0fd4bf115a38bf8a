"""The built-in demo archive: vendor-style folders of synthesized one-shots with useless names.

It holds every supported format, a duplicate under another name, and broken files, so `make demo`
shows each part of drumcat on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from drumcat.audio.synth import INSTRUMENTS, WRITE_FORMATS, render, write_sample

VENDORS = ["VendorA_Mega_Pack", "vendor-b/Drums Vol 2", "Free Stuff 2019"]
PER_INSTRUMENT = 3


def build_demo_archive(target: Path) -> dict[str, int]:
    """Write the demo archive into `target` (replacing an earlier demo there). Returns counts."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    formats = list(WRITE_FORMATS)
    written = 0
    for index, instrument in enumerate(sorted(INSTRUMENTS)):
        for take in range(PER_INSTRUMENT):
            serial = index * PER_INSTRUMENT + take
            vendor = VENDORS[serial % len(VENDORS)]
            ext = formats[serial % len(formats)]
            write_sample(target / vendor / f"smp_{serial:04d}.{ext}", render(instrument, seed=serial))
            written += 1
    first = target / VENDORS[0] / f"smp_0000.{formats[0]}"
    duplicate = target / "misc" / "copy of smp_0000.wav"
    duplicate.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(first, duplicate)
    (target / "misc" / "broken_header.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (target / "misc" / "empty.flac").write_bytes(b"")
    (target / "misc" / "readme.txt").write_text("not audio, not scanned\n")
    return {"samples": written, "duplicates": 1, "broken": 2}


def instrument_of(path: Path | str) -> str:
    """The instrument a demo sample was rendered from, read from its serial (`smp_0007.aif`, or the
    duplicate `copy of smp_0000.wav`): what a user who knows the demo would label it."""
    serial = int(Path(path).stem.rsplit("smp_", 1)[1])
    return sorted(INSTRUMENTS)[serial // PER_INSTRUMENT]

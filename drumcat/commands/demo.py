"""The built-in demo archive: vendor-style folders of synthesized one-shots with useless names.

It holds every supported format, a duplicate under another name, and broken files, so `make demo`
shows each part of drumcat on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from drumcat.audio.synth import INSTRUMENTS, WRITE_FORMATS, render, write_sample
from drumcat.errors import DrumcatError, listing
from drumcat.outputs import files_below

VENDORS = ["VendorA_Mega_Pack", "vendor-b/Drums Vol 2", "Free Stuff 2019"]
PER_INSTRUMENT = 3


MARKER = ".drumcat-demo"  # in every demo archive: `demo-archive` replaces a folder only when it holds one
BROKEN = {"misc/broken_header.wav": b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", "misc/empty.flac": b""}
NOT_AUDIO = {"misc/readme.txt": b"not audio, not scanned\n"}
DUPLICATE = "misc/copy of smp_0000.wav"


def samples() -> list[tuple[str, str, int]]:
    """(path in the archive, instrument, seed) of each synthesized sample."""
    formats, found = list(WRITE_FORMATS), []
    for index, instrument in enumerate(sorted(INSTRUMENTS)):
        for take in range(PER_INSTRUMENT):
            serial = index * PER_INSTRUMENT + take
            ext = formats[serial % len(formats)]
            found.append((f"{VENDORS[serial % len(VENDORS)]}/smp_{serial:04d}.{ext}", instrument, serial))
    return found


def build_demo_archive(target: Path) -> dict[str, int]:
    """Write the demo archive into `target`: a new or empty folder, or an earlier demo archive, which it
    replaces. Any other folder is refused: drumcat never deletes a file it did not make. Returns counts."""
    target = Path(target)
    if _replaceable_demo(target):
        shutil.rmtree(target)
    written = samples()
    for path, instrument, seed in written:
        write_sample(target / path, render(instrument, seed=seed))
    (target / DUPLICATE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target / written[0][0], target / DUPLICATE)
    for path, content in {**BROKEN, **NOT_AUDIO}.items():
        (target / path).write_bytes(content)
    (target / MARKER).write_text("a demo archive drumcat wrote: `drumcat demo-archive` replaces it\n")
    return {"samples": len(written), "duplicates": 1, "broken": len(BROKEN)}


def _replaceable_demo(target: Path) -> bool:
    """Whether `target` is an earlier demo archive to delete first; False for a new or empty folder.
    Raises DrumcatError for anything else."""
    if not target.exists():
        return False
    if not target.is_dir():
        raise DrumcatError(f"{target}: exists and is not a folder; choose a new folder for the demo archive")
    present = files_below(target)
    if not present:
        return False
    if MARKER not in present:
        raise DrumcatError(f"{target}: holds files and is not a demo archive drumcat wrote; choose a new or "
                           "empty folder (drumcat never deletes a file it did not make)")
    foreign = sorted(present - {MARKER, DUPLICATE, *BROKEN, *NOT_AUDIO, *(path for path, _, _ in samples())})
    if foreign:
        listed = listing(foreign)
        raise DrumcatError(f"{target}: a demo archive that holds files the demo did not write ({listed}); "
                           "move them out first, or choose another folder")
    return True


def instrument_of(path: Path | str) -> str:
    """The instrument a demo sample was rendered from, read from its serial (`smp_0007.aif`, or the
    duplicate `copy of smp_0000.wav`): what a user who knows the demo would label it."""
    serial = int(Path(path).stem.rsplit("smp_", 1)[1])
    return sorted(INSTRUMENTS)[serial // PER_INSTRUMENT]

"""The public sample collections in the training set: where their checkouts are, and their clips.

Two git repositories on GitHub, named by issue #13, join the Debian packages:
- ritchse/tidal-drum-machines: one folder per hardware drum machine and instrument
  (`machines/RolandTR808/rolandtr808-bd/BD0000.WAV`); a machine is a kit for the splits.
- tidalcycles/Dirt-Samples: named folders (`bd/`, `808sd/`, `gretsch/`, ...); only the folders in the
  reviewed tables of drumcat/model/train/labels.py are read.

A checkout is looked for in $DRUMCAT_SOURCES (a folder holding one checkout per collection, named like
the repository), else in build/sources/, where it is cloned when missing and git can reach GitHub. A
collection that cannot be had is reported and left out; a file missing from a checkout (large files can
be absent from a shallow mirror) is skipped and counted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from drumcat.audio.files import AudioReadError, decode
from drumcat.model.train.labels import (
    dirt_name,
    label_by_name,
    label_for_dirt,
    label_for_tidal,
    name_contradicts,
    with_exceptions,
)

DEFAULT_SOURCES_DIR = Path("build/sources")


@dataclass(frozen=True)
class Collection:
    name: str  # the checkout's folder name and the manifest's source
    github: str  # owner/name

    @property
    def url(self) -> str:
        return f"https://github.com/{self.github}.git"


TIDAL = Collection("tidal-drum-machines", "ritchse/tidal-drum-machines")
DIRT = Collection("Dirt-Samples", "tidalcycles/Dirt-Samples")
COLLECTIONS = [TIDAL, DIRT]

# Machines that share recordings are one split unit, whichever collection a file comes from: Dirt's 808
# folders are the TR-808, its `drumtraks` the Drumtracks, `sequential` the Sequential Circuits Tom; the Linn
# machines share their samples, and the Oberheim DX (`odx`) is the DMX's sound set in a smaller box.
_SAME_MACHINE = {
    "AkaiLinn": "Linn", "Linn9000": "Linn", "LinnDrum": "Linn", "LinnLM1": "Linn", "LinnLM2": "Linn",
    "808": "RolandTR808", "909": "RolandTR909", "drumtraks": "SequentialCircuitsDrumtracks",
    "dr2": "BossDR110", "dr55": "BossDR55", "linnhats": "Linn", "kicklinn": "Linn",
    "sequential": "SequentialCircuitsTom", "odx": "OberheimDMX",
    "rs": "ElektronAnalogRytm", "sd": "ElektronAnalogRytm", "cb": "ElektronAnalogRytm",
}


def machine_kit(name: str) -> str:
    """The split unit of a tidal machine or a Dirt folder."""
    if name.startswith("808"):
        name = "808"
    return f"machine:{_SAME_MACHINE.get(name, name)}"


def split_by_hash(kit: str) -> str:
    """The split of a collection's kit, fixed by its name alone (no kit is chosen by how hard it is):
    about 20% of the kits are test kits, 12% validation."""
    bucket = int(hashlib.sha256(kit.encode()).hexdigest(), 16) % 100
    return "test" if bucket < 20 else "validation" if bucket < 32 else "train"


def locate(collection: Collection, log: list[str]) -> Path | None:
    """The collection's checkout, cloned into build/sources/ if it is nowhere yet; None if it cannot be had."""
    base = os.environ.get("DRUMCAT_SOURCES")
    folder = (Path(base) if base else DEFAULT_SOURCES_DIR) / collection.name
    if folder.is_dir():
        return folder
    if base:
        log.append(f"{collection.name}: not in DRUMCAT_SOURCES={base}; left out")
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    clone = subprocess.run(["git", "clone", "--quiet", "--depth", "1", collection.url, str(folder)],
                           capture_output=True, text=True)
    if clone.returncode != 0:
        log.append(f"{collection.name}: could not clone {collection.url} ({clone.stderr.strip()[:200]}); left out")
        return None
    return folder


def commit_of(folder: Path) -> str:
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown (not a git checkout)"


@dataclass
class CollectionFile:
    path: Path
    label: str
    kit: str
    origin: str


def tidal_files(root: Path, skipped: Counter) -> Iterator[CollectionFile]:
    for path in sorted((root / "machines").glob("*/*/*")):
        if path.suffix.lower() != ".wav":
            continue
        machine, folder = path.parent.parent.name, path.parent.name
        label = with_exceptions(TIDAL.name, folder, path.stem, label_for_tidal(folder.rsplit("-", 1)[-1], path.stem))
        if label is None:
            skipped[f"tidal: {folder}"] += 1
            continue
        if name_contradicts(label, path.stem):
            skipped[f"tidal: {folder}/{path.name} (its name says another class)"] += 1
            continue
        yield CollectionFile(path, label_by_name(label, path.stem), machine_kit(machine),
                             f"{machine}/{folder}/{path.name}")


def dirt_files(root: Path, skipped: Counter) -> Iterator[CollectionFile]:
    for path in sorted(root.glob("*/*")):
        if path.suffix.lower() != ".wav":
            continue
        folder = path.parent.name
        label = with_exceptions(DIRT.name, folder, path.stem, label_for_dirt(folder, path.stem))
        if label is None:
            skipped[f"dirt: {folder}"] += 1
            continue
        # A kit folder's prefix is the kit's name, not a class: the Tom's "Tom Clap.wav" is a clap.
        if name_contradicts(label, dirt_name(folder, path.stem)):
            skipped[f"dirt: {folder}/{path.name} (its name says another class)"] += 1
            continue
        yield CollectionFile(path, label_by_name(label, path.stem), machine_kit(folder), f"{folder}/{path.name}")


READERS = {TIDAL.name: tidal_files, DIRT.name: dirt_files}


def decoded(files: Iterator[CollectionFile], rate: int, skipped: Counter, source: str
            ) -> Iterator[tuple[CollectionFile, object]]:
    """Each file's samples at `rate`; a file absent from the checkout or undecodable is counted and skipped."""
    for item in files:
        try:
            yield item, decode(item.path, rate)
        except (AudioReadError, OSError):
            skipped[f"{source}: file missing or unreadable"] += 1

"""Near-duplicate detection, measured: recall on generated transformations of one-shots, and precision on
the distinct velocity layers of the Debian kits (Hydrogen's drumkits), which must never be merged.

    python bench/near_duplicates.py [--originals 200] [--real DIR]

Transformations (each of every original, the original being a 44.1 kHz stereo 24-bit WAV with 10 ms of
silence before the hit): FLAC, Ogg Vorbis, MP3, resampled to 48 kHz, 16-bit, 32-bit float, gain -10 dB,
its leading silence trimmed to 1 ms, 20 ms more silence, a mono mix. "Distinct" layers are the pairs of
one instrument's layers whose waveforms do not match (peak cross-correlation under 0.998): many kits
make their soft layers by scaling one recording, and those are the same recording (a gain change).
Targets (issue #16): recall >= 0.98, precision 1.0 on the distinct layers.

`--real DIR` measures recall again with real recordings as the originals: the first audio file of each
folder under DIR, as many as --originals spread over them (for example the tidal-drum-machines checkout
that `make dataset` uses, build/sources/tidal-drum-machines/machines: one file per machine and instrument),
each given the same 10 ms of silence and stereo pair as a generated original.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.audio.files import decode, resample  # noqa: E402
from drumcat.audio.synth import INSTRUMENTS, render  # noqa: E402
from drumcat.config import ScanConfig  # noqa: E402

RATE = 44_100
AUDIO_SUFFIXES = {f".{ext}" for ext in ScanConfig().formats}  # what `drumcat scan` catalogs
HYDROGEN_KITS = Path("/usr/share/hydrogen/data/drumkits")
TRANSFORMS = ("flac", "ogg", "mp3", "resampled", "pcm16", "float", "gain", "trimmed", "padded", "mono")


def original(seed: int) -> np.ndarray:
    """A stereo one-shot (channels slightly different) after 10 ms of silence. The synthesizer's seeds
    alone make near-identical hits (its noise cymbals differ by 0.2 dB), so each original is also tuned
    (+-6 semitones) and given its own decay: distinct sounds, as two samples of a library are."""
    rng = np.random.default_rng(seed)
    hit = render(sorted(INSTRUMENTS)[seed % len(INSTRUMENTS)], seed=1000 + seed).astype(np.float32)
    hit = resample(hit, int(RATE * 2 ** (rng.uniform(-6, 6) / 12)), RATE)
    hit = hit * np.exp(-np.arange(hit.size) / RATE * rng.uniform(0.0, 8.0)).astype(np.float32)
    stereo = np.stack([hit, 0.9 * hit + 0.01 * np.roll(hit, 3)], axis=1)
    return np.concatenate([np.zeros((int(0.01 * RATE), 2)), stereo]).astype(np.float32)


def real_original(path: Path) -> np.ndarray:
    """A real one-shot made into an original as `original` makes a generated one: 44.1 kHz, a stereo pair of
    slightly different channels, after 10 ms of silence."""
    hit = decode(path, RATE, max_seconds=2.0).astype(np.float32)
    hit = hit / max(float(np.abs(hit).max()), 1e-9) * 0.9  # room for the transformations' gain and resampling
    stereo = np.stack([hit, 0.9 * hit + 0.01 * np.roll(hit, 3)], axis=1)
    return np.concatenate([np.zeros((int(0.01 * RATE), 2)), stereo]).astype(np.float32)


def real_files(root: Path, count: int) -> list[Path]:
    """The first audio file of each folder under `root`, `count` of them spread evenly over the folders."""
    firsts = []
    for folder in sorted({p.parent for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}):
        firsts.append(min(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES))
    step = max(1, len(firsts) // max(count, 1))
    return firsts[::step][:count]


def write_transformed(folder: Path, index: int, audio: np.ndarray) -> dict[str, Path]:
    """The original and every transformation of it, written into `folder`; name -> path."""
    silence = int(0.01 * RATE)
    versions = {
        "original": (audio, RATE, "WAV", "PCM_24", "wav"),
        "flac": (audio, RATE, "FLAC", "PCM_16", "flac"),
        "ogg": (audio, RATE, "OGG", "VORBIS", "ogg"),
        "mp3": (audio, RATE, "MP3", "MPEG_LAYER_III", "mp3"),
        "resampled": (np.stack([resample(audio[:, c], RATE, 48_000) for c in range(2)], axis=1), 48_000, "WAV",
                      "PCM_24", "wav"),
        "pcm16": (audio, RATE, "WAV", "PCM_16", "wav"),
        "float": (audio, RATE, "WAV", "FLOAT", "wav"),
        "gain": (audio * 10 ** (-10 / 20), RATE, "WAV", "PCM_24", "wav"),
        "trimmed": (audio[silence - int(0.001 * RATE):], RATE, "WAV", "PCM_24", "wav"),
        "padded": (np.concatenate([np.zeros((int(0.02 * RATE), 2)), audio]), RATE, "WAV", "PCM_24", "wav"),
        "mono": (audio.mean(axis=1), RATE, "WAV", "PCM_24", "wav"),
    }
    paths = {}
    for name, (data, rate, container, subtype, ext) in versions.items():
        path = folder / f"s{index:04d}-{name}.{ext}"
        sf.write(str(path), np.clip(data, -1, 1), rate, format=container, subtype=subtype)
        paths[name] = path
    return paths


def distinct_layer_files() -> list[list[Path]]:
    """Each Hydrogen instrument's layer files whose waveforms are not one recording scaled."""
    import scipy.signal

    instruments = []
    for kit in sorted(HYDROGEN_KITS.glob("*/drumkit.xml")):
        for element in ET.parse(kit).getroot().iter():
            if element.tag.rsplit("}", 1)[-1] != "instrument":
                continue
            files = [kit.parent / e.text for e in element.iter() if e.tag.rsplit("}", 1)[-1] == "filename" and e.text]
            files = [f for f in files if f.is_file()]
            if len(files) < 2:
                continue
            clips = [decode(f, 22_050, max_seconds=1.0) for f in files]
            keep = []
            for i, clip in enumerate(clips):
                same = False
                for j in keep:
                    other = clips[j]
                    xc = scipy.signal.correlate(clip, other, method="fft")
                    same = same or np.abs(xc).max() / np.sqrt((clip ** 2).sum() * (other ** 2).sum() + 1e-12) >= 0.998
                if not same:
                    keep.append(i)
            if len(keep) > 1:
                instruments.append([files[i] for i in keep])
    return instruments


def grouped(paths: list[Path], work: Path) -> dict[Path, int | None]:
    """Scan the files into a fresh catalog, find near-duplicates; path -> group id (None: no group)."""
    from drumcat.commands.near_duplicates import find_near_duplicates
    from drumcat.commands.scan import scan
    from drumcat.storage.catalog import Catalog

    archive = work / "archive"
    catalog = Catalog(work / "nd.db")
    scan(catalog, [archive], ScanConfig())
    find_near_duplicates(catalog)
    with catalog.read() as conn:
        group_of = {Path(p): g for p, g in conn.exec_driver_sql(
            "SELECT f.path, g.group_id FROM present_files f LEFT JOIN near_duplicate_groups g ON g.hash = f.hash")}
    return {p: group_of.get(p.resolve()) for p in paths}


def recall(originals: list[np.ndarray], work: Path) -> dict[str, float]:
    folder = work / "archive" / "generated"
    folder.mkdir(parents=True)
    cases = [write_transformed(folder, i, audio) for i, audio in enumerate(originals)]
    group = grouped([p for case in cases for p in case.values()], work)
    found = Counter()
    for case in cases:
        base = group[case["original"]]
        for name in TRANSFORMS:
            found[name] += base is not None and group[case[name]] == base
    originals_grouped = Counter(group[c["original"]] for c in cases)
    result = {name: found[name] / len(cases) for name in TRANSFORMS}
    result["all"] = sum(found.values()) / (len(cases) * len(TRANSFORMS))
    # originals that share a group with another original (real collections hold a few files twice)
    result["originals merged"] = float(sum(n for g, n in originals_grouped.items() if g is not None and n > 1))
    return result


def print_recall(what: str, result: dict[str, float], originals: int) -> None:
    print(f"recall over {originals} {what} originals x {len(TRANSFORMS)} transformations: {result['all']:.3f}")
    for name in TRANSFORMS:
        print(f"  {name:<10} {result[name]:.3f}")
    print(f"  originals grouped with another original: {int(result['originals merged'])}")


def precision(work: Path) -> tuple[int, int]:
    """(distinct layer pairs, of them merged) on the Hydrogen kits."""
    import shutil

    instruments = distinct_layer_files()
    folder = work / "archive" / "layers"
    copies = []
    for n, files in enumerate(instruments):
        for f in files:
            target = folder / f"{n:04d}" / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            copies.append(target)
    group = grouped(copies, work)
    pairs = merged = 0
    for n, files in enumerate(instruments):
        ids = [group[folder / f"{n:04d}" / f.name] for f in files]
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                pairs += 1
                merged += ids[i] is not None and ids[i] == ids[j]
    return pairs, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--real", type=Path, help="a folder of real one-shots: recall on them too")
    args = parser.parse_args()
    files = real_files(args.real, args.originals) if args.real else []
    if args.real and not files:
        parser.error(f"--real {args.real}: no audio files there; give a folder of one-shots, for example "
                     "build/sources/tidal-drum-machines/machines (make dataset fetches it)")
    with tempfile.TemporaryDirectory() as tmp:
        result = recall([original(i) for i in range(args.originals)], Path(tmp) / "recall")
    print_recall("generated", result, args.originals)
    if files:
        with tempfile.TemporaryDirectory() as tmp:
            result = recall([real_original(f) for f in files], Path(tmp) / "recall")
        print_recall(f"real ({args.real})", result, len(files))
    if not HYDROGEN_KITS.is_dir():
        print("precision: skipped (install Debian's hydrogen-drumkits for the velocity layers)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        pairs, merged = precision(Path(tmp))
    print(f"precision on the Hydrogen kits' distinct velocity layers: {pairs} pairs, {merged} merged "
          f"(precision {1 - merged / max(pairs, 1):.3f})")


if __name__ == "__main__":
    main()

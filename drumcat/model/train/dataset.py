"""`make dataset`: the default model's training set, built reproducibly from Debian packages.

Sources (each a "kit": the unit a split holds out whole, so no kit is in two splits):
- hydrogen-drumkits: every kit's drumkit.xml names its instruments and their sample files.
- hydrogen-data: Hydrogen's own kits (GMRockKit, TR808EmulationKit), read the same way.
- fluid-soundfont-gm, musescore-general-soundfont-small, timgm6mb-soundfont, csound-soundfont,
  avldrums.lv2-soundfont: General MIDI percussion keys rendered with fluidsynth, three velocities, every
  GM drum kit preset, labeled by the GM map except where a kit puts something else on a key (its
  instrument and sample names say so: labels.FONT_KEY_OVERRIDES); Timpani from FluidR3's melodic Timpani
  program.
- sonic-pi-samples: labeled by file name.
- espeak-ng: spoken syllables for Vox, one voice per kit.
- synthesized: Noise (noise bursts) and Reverse (reversed hits of the same split's clips).
- synthesized-kits (only with --synth-kits): 190 electronic kits from a parametric drum synthesizer, 14
  sounds each (drumcat/model/train/synth_kits.py); whole kits held out for validation and test. Not in
  the default model's data: they lowered its accuracy on the real validation kits (README, run 19).
- the public collections tidal-drum-machines and Dirt-Samples (drumcat/model/train/sources.py): a checkout
  in $DRUMCAT_SOURCES or build/sources/; a missing one is reported and left out.

    python -m drumcat.model.train.dataset --out build/dataset

Writes clips (mono WAV at the clip sample rate, 22,050 Hz unless `--rate` says otherwise, starting at the
onset), manifest.csv (path, label, source, kit, split), test.csv (the test split's path, label, source, kit:
`drumcat evaluate build/dataset/test.csv` reproduces the card's test figures with their interval over kits)
and summary.json (the clip rate, counts per class, per source and per split).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from drumcat.audio.features import clip_start, is_silent
from drumcat.audio.files import AudioReadError, decode, resample
from drumcat.audio.fingerprint import RECIPE as FINGERPRINT_RECIPE
from drumcat.audio.fingerprint import fingerprints
from drumcat.audio.pair_search import close_pairs
from drumcat.audio.synth import noise_burst
from drumcat.model.train import sources, synth_kits
from drumcat.model.train.labels import (
    GM_KEYS,
    label_by_name,
    label_for_font_key,
    label_for_instrument,
    label_for_sonic_pi,
    name_contradicts,
    with_exceptions,
)

# What `make dataset` installs (the Makefile reads this list) and the model card records with versions.
DEBIAN_PACKAGES = ["hydrogen-drumkits", "hydrogen-data", "fluid-soundfont-gm", "musescore-general-soundfont-small",
                   "timgm6mb-soundfont", "csound-soundfont", "avldrums.lv2-soundfont", "sonic-pi-samples",
                   "fluidsynth", "espeak-ng"]
CLIP_RATE = 22_050
CLIP_RATES = (22_050, 32_000, 44_100)
"""Rates a dataset can be built at (`--rate`): the default; 32 kHz, which keeps what hats and cymbals have
between 11 and 16 kHz (README, run 34); 44.1 kHz, which keeps it too without resampling most archives'
files at inference (runs 35 and after). `train` has a feature recipe for each (`RECIPES_BY_RATE`)."""
FINGERPRINT_RATE = FINGERPRINT_RECIPE.sample_rate  # near-duplicate fingerprints are computed at their own rate
CLIP_SECONDS = 2.0
HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
HYDROGEN_DATA_KITS = {"GMRockKit", "TR808EmulationKit"}  # Hydrogen's own kits; the rest: hydrogen-drumkits
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
FLUID_GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
AVL_FONTS = [Path("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2"), Path("/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2")]
# Drum kit presets (bank 128 programs) whose keys follow the General MIDI percussion map. FluidR3 and
# MuseScore General (derived from it) have variants of each kit; sound effect and CM-64 kits are left out.
_GM_KIT_PRESETS = (0, 8, 16, 24, 25, 32, 40, 48)
_FLUID_KIT_PRESETS = (*range(0, 8), *range(8, 16), *range(16, 20), 24, 25, *range(32, 37), 40, 41, 42, 48)


@dataclass(frozen=True)
class DrumFont:
    path: Path
    package: str
    kit: str  # the split unit: every preset of a font shares samples, so a font is one kit
    presets: tuple[int, ...]


GM_DRUM_FONTS = [
    DrumFont(FLUID_GM, "fluid-soundfont-gm", "fluidr3:all", _FLUID_KIT_PRESETS),
    DrumFont(Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"), "musescore-general-soundfont-small",
             "fluidr3:all", _FLUID_KIT_PRESETS),  # built from FluidR3's samples: the same split unit
    DrumFont(Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "timgm6mb-soundfont", "timgm6mb:all", _GM_KIT_PRESETS),
    DrumFont(Path("/usr/share/sounds/sf2/sf_GMbank.sf2"), "csound-soundfont", "csound-gm:all", _GM_KIT_PRESETS),
]
VELOCITIES = (50, 90, 127)
VOX_WORDS = ["hey", "ha", "yeah", "oh", "uh", "one", "two", "go", "whoa", "huh", "yo", "check"]
VOX_VOICES = ["en", "en-us", "de", "fr", "es", "it"]

# Held-out kits. Kits that share samples (the Millo kits; Hydrogen's and AVL's Black Pearl; all FluidR3
# presets) stay together in one split.
TEST_KITS = {"hydrogen:ColomboAcousticDrumkit", "hydrogen:HardElectro1", "hydrogen:Gimme A Hand 1.0",
             "hydrogen:rumpf_kit_z01_h2", "avldrums:Red_Zeppelin_4_LV2", "espeak:es", "synth:test"}
VALIDATION_KITS = {"hydrogen:BJA_Pacific", "hydrogen:VariBreaks", "hydrogen:ElectricEmpireKit",
                   "hydrogen:circAfrique v4", "timgm6mb:all", "espeak:fr", "synth:validation"}


def holdout_group(kit: str) -> str:
    """What cross-validation must hold out whole with `kit`: its name, or its family where kits share
    samples. A kit's name, not its source, because a name two sources share is one instrument (FluidR3 in
    two Debian packages, the Black Pearl in Hydrogen and AVL, the TR-808 in both collections), and the
    Reverse clips made from a kit's hits carry the kit's name too."""
    return "hydrogen:Millo" if kit.startswith("hydrogen:Millo") else kit


def noise_kit(split: str) -> str:
    """The kit name of a split's synthesized noise bursts (TEST_KITS and VALIDATION_KITS name two)."""
    return f"synth:{split}"


NOISE_KITS = tuple(noise_kit(split) for split in ("train", "validation", "test"))


def independent_draws(kit: str) -> bool:
    """Whether a kit's clips are independent random draws that share no samples: the synthesized noise
    bursts, one kit per split only so that the splits hold different seeds. Cross-validation may spread
    them over its folds like kits of one clip; held out whole, one fold's model would have no Noise clip
    to learn from (all 200 fell into one fold, which scored 0.70 where it scores 0.79 without them)."""
    return kit in NOISE_KITS


def split_of(kit: str) -> str:
    if kit in TEST_KITS:
        return "test"
    if kit in VALIDATION_KITS:
        return "validation"
    if kit.startswith(synth_kits.PREFIX):
        return synth_kits.split_of_kit(int(kit.removeprefix(synth_kits.PREFIX)))
    return sources.split_by_hash(kit) if kit.startswith("machine:") else "train"


@dataclass
class Clip:
    samples: np.ndarray
    label: str
    source: str
    kit: str
    origin: str  # the file, key or word it came from


def to_clip(samples: np.ndarray, rate: int = CLIP_RATE) -> np.ndarray | None:
    """Cut a one-shot to start at its onset (`clip_start`: 5 ms before the first sample above 2% of peak),
    as `infer` cuts files for a recipe with start_at_onset; None for a silent or too short one."""
    if is_silent(samples) or samples.size < rate // 100:
        return None
    start = clip_start(samples, rate)
    return samples[start:start + int(CLIP_SECONDS * rate)].astype(np.float32)


# --- hydrogen ----------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def hydrogen_clips(skipped: Counter, rate: int = CLIP_RATE) -> Iterator[Clip]:
    for kit_xml in sorted(HYDROGEN_DIR.glob("*/drumkit.xml")):
        kit = f"hydrogen:{kit_xml.parent.name}"
        package = "hydrogen-data" if kit_xml.parent.name in HYDROGEN_DATA_KITS else "hydrogen-drumkits"
        for element in ET.parse(kit_xml).getroot().iter():
            if _local(element.tag) != "instrument":
                continue
            name = next((child.text or "" for child in element if _local(child.tag) == "name"), "")
            files = [e.text for e in element.iter() if _local(e.tag) == "filename" and e.text]
            label = with_exceptions("hydrogen", kit_xml.parent.name, name, label_for_instrument(name))
            if label is None:
                if files:
                    skipped[f"{kit}: {name!r}"] += len(files)
                continue
            for filename in files:
                if name_contradicts(label, Path(filename).stem):
                    skipped[f"{kit}: {filename} (its name says another class than {name!r})"] += 1
                    continue
                try:
                    clip = to_clip(decode(kit_xml.parent / filename, rate), rate)
                except AudioReadError as exc:  # a few kits name files the package does not ship
                    skipped[f"{kit}: {filename} ({exc})"] += 1
                    continue
                if clip is not None:
                    yield Clip(clip, label_by_name(label, Path(filename).stem), package, kit, f"{name}: {filename}")


# --- soundfonts --------------------------------------------------------------------------------------

_NOTE_SPACING_S = 2.5


def _render(font: Path, program: int, channel: int, notes: list[tuple[int, int]], workdir: Path, rate: int,
            ) -> np.ndarray:
    """Render notes (key, velocity), one every 2.5 s, dry (no reverb or chorus), at `rate`."""
    import mido  # only the dataset builder needs MIDI files

    ticks_per_second = 960  # 480 ticks per beat at 120 bpm
    track = mido.MidiTrack()
    track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    gap = int(_NOTE_SPACING_S * ticks_per_second)
    hold = int(1.8 * ticks_per_second)
    for key, velocity in notes:
        track.append(mido.Message("note_on", note=key, velocity=velocity, channel=channel, time=0))
        track.append(mido.Message("note_off", note=key, velocity=0, channel=channel, time=hold))
        track.append(mido.Message("note_on", note=0, velocity=0, channel=channel, time=gap - hold))
    song = mido.MidiFile(ticks_per_beat=480)
    song.tracks.append(track)
    midi_path, wav_path = workdir / "notes.mid", workdir / "notes.wav"
    song.save(midi_path)
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.8", "-r", str(rate), "-F",
         str(wav_path), str(font), str(midi_path)],
        check=True, capture_output=True,
    )
    audio, written = sf.read(str(wav_path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), written, rate)


def _sliced(rendered: np.ndarray, notes: list[tuple[int, int]], rate: int) -> Iterator[tuple[int, int, np.ndarray]]:
    step = int(_NOTE_SPACING_S * rate)
    for index, (key, velocity) in enumerate(notes):
        yield key, velocity, rendered[index * step:(index + 1) * step]


def soundfont_clips(workdir: Path, rate: int = CLIP_RATE) -> Iterator[Clip]:
    notes = [(key, velocity) for key in sorted(GM_KEYS) for velocity in VELOCITIES]
    for font in GM_DRUM_FONTS:
        for program in font.presets:
            rendered = _render(font.path, program, 9, notes, workdir, rate)
            for key, velocity, audio in _sliced(rendered, notes, rate):
                label = label_for_font_key(font.path.stem, program, key)
                clip = to_clip(audio, rate) if label else None
                if clip is not None:
                    yield Clip(clip, label, font.package, font.kit,
                               f"{font.path.stem} preset {program} key {key} v{velocity}")
    timpani = [(key, velocity) for key in range(36, 60, 2) for velocity in VELOCITIES]
    for key, velocity, audio in _sliced(_render(FLUID_GM, 47, 0, timpani, workdir, rate), timpani, rate):
        clip = to_clip(audio, rate)
        if clip is not None:
            yield Clip(clip, "Timpani", "fluid-soundfont-gm", "fluidr3:all", f"Timpani key {key} v{velocity}")
    for font in AVL_FONTS:
        # The AVL fonts hold one GM-mapped kit as bank 0, program 0; played on a melodic channel.
        kit = f"avldrums:{font.stem}"
        if font.stem.startswith("Black_Pearl"):
            kit = "hydrogen:The Black Pearl 1.0"  # same kit, same recordings: one unit for splits
        for key, velocity, audio in _sliced(_render(font, 0, 0, notes, workdir, rate), notes, rate):
            label = label_for_font_key(font.stem, 0, key)
            clip = to_clip(audio, rate) if label else None
            if clip is not None:
                yield Clip(clip, label, "avldrums.lv2-soundfont", kit, f"{font.stem} key {key} v{velocity}")


# --- sonic pi, espeak, synthesized -------------------------------------------------------------------


def sonic_pi_clips(skipped: Counter, rate: int = CLIP_RATE) -> Iterator[Clip]:
    for path in sorted(SONIC_PI_DIR.glob("*.flac")):
        label = label_for_sonic_pi(path.stem)
        if label is None:
            skipped[f"sonic-pi: {path.stem}"] += 1
            continue
        clip = to_clip(decode(path, rate), rate)
        if clip is not None:
            yield Clip(clip, label, "sonic-pi-samples", "sonic-pi", path.name)


def vox_clips(workdir: Path, rate: int = CLIP_RATE) -> Iterator[Clip]:
    for voice in VOX_VOICES:
        for word in VOX_WORDS:
            for pitch in (25, 50, 75):
                out = workdir / "vox.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(out), word],
                               check=True, capture_output=True)
                clip = to_clip(decode(out, rate), rate)
                if clip is not None:
                    yield Clip(clip, "Vox", "espeak-ng", f"espeak:{voice}", f"{voice} {word} p{pitch}")


def noise_clips(rate: int = CLIP_RATE) -> Iterator[Clip]:
    for split, seeds in (("train", range(0, 160)), ("validation", range(1000, 1040)), ("test", range(2000, 2040))):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            burst = noise_burst(rng)
            if seed % 2:  # half of them coloured: a one-pole low-pass makes pinkish noise
                burst = np.cumsum(burst) * 0.05
                burst -= np.linspace(burst[0], burst[-1], burst.size)
            clip = to_clip(resample(burst.astype(np.float32), 44_100, rate), rate)
            if clip is not None:
                yield Clip(clip, "Noise", "synthesized", noise_kit(split), f"noise seed {seed}")


def reversed_clips(clips: list[Clip], per_split: dict[str, int], rate: int = CLIP_RATE) -> Iterator[Clip]:
    """Reverse hits of each split's own clips, so a held-out kit stays held out."""
    rng = np.random.default_rng(7)
    for split, count in per_split.items():
        # A hit already played backwards would come out forwards: never labelled Reverse.
        pool = [c for c in clips if split_of(c.kit) == split and c.label not in ("Noise", "Vox", "Reverse")]
        for index in rng.choice(len(pool), size=min(count, len(pool)), replace=False):
            original = pool[index]
            clip = to_clip(original.samples[::-1].copy(), rate)
            if clip is not None:
                yield Clip(clip, "Reverse", "synthesized", original.kit, f"reversed {original.origin}")


def synth_kit_clips(numbers: Iterable[int] = synth_kits.ALL_KITS, rate: int = CLIP_RATE) -> Iterator[Clip]:
    """The synthesized kits' sounds, cut as every clip is (`to_clip`): all of them for `--synth-kits`, or the
    training kits `drumcat train --synth-train-kits` adds to what it fits on."""
    for number in numbers:
        for label, instrument, samples in synth_kits.kit_sounds(number, rate):
            clip = to_clip(samples, rate)
            if clip is not None:
                yield Clip(clip, label, synth_kits.SOURCE, f"{synth_kits.PREFIX}{number}", f"kit {number} {instrument}")


def collection_clips(skipped: Counter, log: list[str], rate: int = CLIP_RATE) -> tuple[list[Clip], dict[str, str]]:
    """Clips of every public collection that can be had, and each one's commit (for the card)."""
    clips, commits = [], {}
    for collection in sources.COLLECTIONS:
        root = sources.locate(collection, log)
        if root is None:
            continue
        commits[collection.name] = f"{collection.github}@{sources.commit_of(root)}"
        files = sources.READERS[collection.name](root, skipped)
        for item, samples in sources.decoded(files, rate, skipped, collection.name):
            clip = to_clip(samples, rate)
            if clip is not None:
                clips.append(Clip(clip, item.label, collection.name, item.kit, item.origin))
    return clips, commits


def without_duplicates(clips: list[Clip]) -> tuple[list[Clip], int]:
    """Drop clips whose audio is identical to an earlier one (kit variants often share a sample), so no
    sound weighs double in training or counts twice in evaluation."""
    seen: set[bytes] = set()
    kept = []
    for clip in clips:
        digest = hashlib.sha256(np.round(clip.samples, 4).tobytes()).digest()
        if digest not in seen:
            seen.add(digest)
            kept.append(clip)
    return kept, len(clips) - len(kept)


# Which copy of a recording two kits share is kept: the held-out one, so no held-out kit is scored on a
# recording its model was trained on.
SPLIT_PRECEDENCE = {"test": 0, "validation": 1, "train": 2}


def without_shared_recordings(clips: list[Clip], rate: int = CLIP_RATE) -> tuple[list[Clip], Counter]:
    """Keep a recording that two kits share once (drumcat's near-duplicate fingerprints: the same take after
    resampling, a gain change, trimming or re-encoding; another velocity layer is another take): in the
    held-out split when the kits are in different splits (test, then validation, then train), else in the
    kit read first. General MIDI fonts built from one sample set (timgm6mb, a validation font, and the
    csound font) and kits that borrow another's cymbals (AVL's Red Zeppelin, a test kit, and Hydrogen's
    Black Pearl) would otherwise score held-out kits, and cross-validation folds, on recordings their model
    trained on (bench/split_overlap.py counts them). Returns the kept clips and, per kit, how many it lost."""
    prints = fingerprints([resample(clip.samples, rate, FINGERPRINT_RATE) for clip in clips], FINGERPRINT_RATE)
    lengths = np.array([len(clip.samples) / rate for clip in clips])
    close, _ = close_pairs(prints, lengths)
    rank = [(SPLIT_PRECEDENCE[split_of(clip.kit)], index) for index, clip in enumerate(clips)]
    dropped: set[int] = set()
    for a, b in close:
        if clips[a].kit != clips[b].kit:
            dropped.add(max(a, b, key=rank.__getitem__))
    lost = Counter(clips[i].kit for i in dropped)
    return [clip for index, clip in enumerate(clips) if index not in dropped], lost


# --- build -------------------------------------------------------------------------------------------


RATE_BEFORE_SUMMARIES_SAID = 22_050  # every dataset built before summary.json recorded the clip rate


def clip_rate_of(dataset: Path) -> int:
    """The rate a built dataset's clips are at, as its summary says."""
    summary = dataset / "summary.json"
    said = json.loads(summary.read_text()).get("clip_rate") if summary.exists() else None
    return int(said) if said else RATE_BEFORE_SUMMARIES_SAID


def build(out: Path, *, with_synth_kits: bool = False, rate: int = CLIP_RATE) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    clip_dir = out / "clips"
    clip_dir.mkdir(exist_ok=True)
    skipped: Counter = Counter()
    log: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        clips = [*hydrogen_clips(skipped, rate), *soundfont_clips(workdir, rate), *sonic_pi_clips(skipped, rate),
                 *vox_clips(workdir, rate), *noise_clips(rate)]
    public, commits = collection_clips(skipped, log, rate)
    for line in log:
        print(line)
    # tidal-drum-machines comes before Dirt-Samples: a file both hold (about 120) is kept once, as tidal's
    clips, duplicates = without_duplicates([*clips, *public])
    clips, shared = without_shared_recordings(clips, rate)
    clips.extend(reversed_clips(clips, {"train": 240, "validation": 60, "test": 60}, rate))
    if with_synth_kits:
        clips.extend(synth_kit_clips(rate=rate))  # last, so the clips before keep their names and reversals

    rows = []
    for index, clip in enumerate(clips):
        path = clip_dir / f"{index:05d}_{clip.label}.wav"
        sf.write(str(path), clip.samples, rate, subtype="PCM_16")
        rows.append({"path": str(path.relative_to(out)), "label": clip.label, "source": clip.source,
                     "kit": clip.kit, "split": split_of(clip.kit), "origin": clip.origin})
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (out / "test.csv").open("w", newline="") as handle:  # `drumcat evaluate build/dataset/test.csv`
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "source", "kit"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in rows if r["split"] == "test")
    summary = {
        "clips": len(rows),
        "clip_rate": rate,
        "per_class": dict(sorted(Counter(r["label"] for r in rows).items())),
        "per_class_split": {
            split: dict(sorted(Counter(r["label"] for r in rows if r["split"] == split).items()))
            for split in ("train", "validation", "test")
        },
        "per_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "per_kit": dict(sorted(Counter(r["kit"] for r in rows).items())),
        "skipped_names": dict(sorted(skipped.items())),
        "duplicates_dropped": duplicates,
        "shared_recordings_dropped": dict(sorted(shared.items())),
        "collections": commits,
        "collections_left_out": log,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the default model's training set.")
    parser.add_argument("--out", type=Path, default=Path("build/dataset"))
    parser.add_argument("--rate", type=int, choices=CLIP_RATES, default=CLIP_RATE,
                        help="sample rate the clips are written at (Hz)")
    parser.add_argument("--synth-kits", action="store_true",
                        help="add the 190 synthesized electronic kits (not in the default model's data)")
    args = parser.parse_args()
    fonts = [font.path for font in GM_DRUM_FONTS]
    missing = [str(p) for p in (HYDROGEN_DIR, SONIC_PI_DIR, *fonts, *AVL_FONTS) if not p.exists()]
    if missing:
        raise SystemExit(f"error: missing {', '.join(missing)}; run `make dataset` to install the packages")
    summary = build(args.out, with_synth_kits=args.synth_kits, rate=args.rate)
    print(json.dumps({k: summary[k] for k in ("clips", "per_class", "per_source")}, indent=2))
    print(f"manifest: {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()

"""`drumcat kit`: a playable drum kit from a view, as an SFZ instrument or a Hydrogen drum kit.

The kit view contract (like materialize's src/dest): a view with a `src` column (an existing file) and
either a `slot` column naming the slot each row fills (one of SLOTS, or a MIDI key 0-127) or a `label`
column (a fine class: Kick, Snare, Hihat, ...), from which the slot follows. An optional `confidence`
column chooses among rows for the same slot: the most confident wins (the built-in views have it).
Hi-hats fill two slots, the shortest sound the closed hat and the longest the open hat; toms fill
three, ordered low to high by their pitch (the strongest spectral peak of the first 200 ms).

Samples are copied into DIR/samples (MP3, which drum samplers often cannot read, is written as WAV);
nothing is written outside DIR, and an existing DIR that is not a kit drumcat built is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from drumcat.audio.files import AudioReadError, decode
from drumcat.errors import DrumcatError, listing
from drumcat.outputs import KIT_MARKER, files_below, refuse_archive_overlap
from drumcat.paths import os_path
from drumcat.staging import remove_abandoned_staging, staging_beside
from drumcat.storage.catalog import Catalog, rows, scanned_archives
from drumcat.storage.rules import RuleChanges, rules_for_this_command
from drumcat.times import utc_now

FORMATS = ("sfz", "hydrogen")
COPIED_AS_IS = {"wav", "flac", "aif", "aiff", "ogg"}

# Slot -> General MIDI percussion key.
SLOTS: dict[str, int] = {
    "kick": 36, "rim": 37, "snare": 38, "clap": 39, "low_tom": 41, "closed_hat": 42, "mid_tom": 45,
    "open_hat": 46, "high_tom": 48, "crash": 49, "ride": 51, "china": 52, "tambourine": 54, "splash": 55,
    "cowbell": 56,
}
# Fine label -> the slots it can fill (in the order they are filled).
LABEL_SLOTS: dict[str, tuple[str, ...]] = {
    "Kick": ("kick",), "Snare": ("snare",), "Rim": ("rim",), "Clap": ("clap",),
    "Hihat": ("closed_hat", "open_hat"), "Tom": ("low_tom", "mid_tom", "high_tom"),
    "Crash": ("crash",), "Cymbal": ("crash",), "Ride": ("ride",), "China": ("china",), "Splash": ("splash",),
    "Tambourine": ("tambourine",), "Cowbell": ("cowbell",),
}


@dataclass
class KitSlot:
    slot: str
    key: int
    src: Path
    sample: str = ""  # file name inside DIR/samples
    confidence: float | None = None


@dataclass
class KitSummary:
    out: str
    format: str
    name: str
    slots: list[dict[str, Any]] = field(default_factory=list)
    file: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pitch_of(path: Path) -> float:
    """The strongest spectral peak (Hz) of the first 200 ms: enough to order toms low to high."""
    samples = decode(path, 22_050, max_seconds=0.2)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size), n=8192))
    return float(np.fft.rfftfreq(8192, 1 / 22_050)[int(np.argmax(spectrum))])


def duration_of(path: Path) -> float:
    try:
        return float(sf.info(os.fsencode(path)).duration)
    except (sf.LibsndfileError, RuntimeError):
        return 0.0


def choose_slots(records: list[dict[str, Any]]) -> list[KitSlot]:
    """One sound per slot from the view's rows: named slots first, then labels by confidence."""
    chosen: dict[str, KitSlot] = {}
    ranked = sorted(records, key=lambda r: -(r.get("confidence") or 0.0))
    for record in ranked:
        slot = record.get("slot")
        if slot is None:
            continue
        slot, key = _named_slot(slot)
        chosen.setdefault(slot, KitSlot(slot, key, Path(os_path(record["src"])), confidence=record.get("confidence")))
    by_label: dict[str, list[dict[str, Any]]] = {}
    for record in ranked:
        if record.get("slot") is None and record.get("label") in LABEL_SLOTS:
            by_label.setdefault(record["label"], []).append(record)
    for label, candidates in by_label.items():
        slots = [s for s in LABEL_SLOTS[label] if s not in chosen]
        picked = candidates[: len(slots)]
        if label == "Hihat":
            picked.sort(key=lambda r: duration_of(Path(os_path(r["src"]))))  # closed is shorter than open
        elif label == "Tom":
            picked.sort(key=lambda r: pitch_of(Path(os_path(r["src"]))))  # low, mid, high
        for slot, record in zip(slots, picked, strict=False):
            chosen[slot] = KitSlot(slot, SLOTS[slot], Path(os_path(record["src"])), confidence=record.get("confidence"))
    return sorted(chosen.values(), key=lambda s: s.key)


def _named_slot(value: Any) -> tuple[str, int]:
    text = str(value).strip().lower()
    if text in SLOTS:
        return text, SLOTS[text]
    if text.isdigit() and 0 <= int(text) <= 127:
        named = {key: name for name, key in SLOTS.items()}
        return named.get(int(text), f"key_{text}"), int(text)
    raise DrumcatError(f"slot {value!r}: use one of {', '.join(SLOTS)} or a MIDI key 0-127")


def read_kit_rows(catalog: Catalog, view: str, changes: RuleChanges | None) -> list[dict[str, Any]]:
    from drumcat.commands.materialize import view_columns

    with rules_for_this_command(catalog, changes) as conn:
        columns = view_columns(conn, view)
        if "src" not in columns or not ({"slot", "label"} & set(columns)):
            raise DrumcatError(f"view {view!r} is not a kit view: it needs a src column and a slot or label column")
        wanted = [c for c in ("src", "slot", "label", "confidence") if c in columns]
        quoted = view.replace('"', '""')
        return rows(conn, f'SELECT {", ".join(wanted)} FROM "{quoted}"')


def check_out_dir(out: Path) -> None:
    """A kit is built into a new or empty folder, or replaces a kit drumcat built that holds nothing else."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / KIT_MARKER).is_file())):
        raise DrumcatError(f"{out}: exists and is not a kit drumcat built; choose an empty or new folder")
    if out.is_dir() and (out / KIT_MARKER).is_file():
        foreign = files_not_of_kit(out)
        if foreign:
            listed = listing(foreign)
            raise DrumcatError(f"{out}: a kit drumcat built that now holds other files ({listed}); move them "
                               "out first, or choose another folder: drumcat never deletes a file it did not make")


def files_not_of_kit(folder: Path) -> list[str] | None:
    """The files in `folder` its kit marker does not list (None: not a kit drumcat built)."""
    if not (folder / KIT_MARKER).is_file():
        return None
    return sorted(files_below(folder) - _files_of_kit(folder))


def _files_of_kit(out: Path) -> set[str]:
    """The files a kit's marker says its build wrote: the kit file, the samples and the marker."""
    try:
        built = json.loads((out / KIT_MARKER).read_text())
        samples = "" if built["format"] == "hydrogen" else "samples/"
        return {KIT_MARKER, built["file"], *(f"{samples}{slot['sample']}" for slot in built["slots"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {KIT_MARKER}  # an unreadable marker vouches for no file but itself


def copy_samples(slots: list[KitSlot], samples_dir: Path) -> None:
    for slot in slots:
        ext = slot.src.suffix.lower().lstrip(".")
        if ext in COPIED_AS_IS:
            slot.sample = f"{slot.slot}.{ext}"
            shutil.copyfile(slot.src, samples_dir / slot.sample)
        else:
            slot.sample = f"{slot.slot}.wav"
            try:
                data, rate = sf.read(os.fsencode(slot.src), always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DrumcatError(f"{slot.src}: cannot read it for the kit ({exc})") from exc
            sf.write(str(samples_dir / slot.sample), data, rate, subtype="PCM_24")


def sfz_text(name: str, slots: list[KitSlot]) -> str:
    lines = [f"// {name}: built by drumcat kit ({utc_now()})", "<control>", "default_path=samples/", "",
             "<group>", "loop_mode=one_shot", ""]
    for slot in slots:
        # the closed hat (group 1) chokes the open one (group 2, turned off by group 1)
        group = " group=2 off_by=1" if slot.slot == "open_hat" else " group=1" if slot.slot == "closed_hat" else ""
        lines.append(f"<region> sample={slot.sample} key={slot.key}{group} // {slot.slot}")
    return "\n".join(lines) + "\n"


def hydrogen_xml(name: str, slots: list[KitSlot]) -> str:
    """A drumkit.xml that Hydrogen's own schema (drumkit.xsd) validates; samples beside it."""
    instruments = []
    for index, slot in enumerate(slots):
        mute = 0 if slot.slot in ("closed_hat", "open_hat") else -1  # an open hat is choked by the closed one
        instruments.append(f"""  <instrument>
   <id>{index}</id>
   <name>{escape(slot.slot.replace('_', ' ').title())}</name>
   <volume>1</volume>
   <isMuted>false</isMuted>
   <isSoloed>false</isSoloed>
   <pan>0</pan>
   <pitchOffset>0</pitchOffset>
   <randomPitchFactor>0</randomPitchFactor>
   <gain>1</gain>
   <applyVelocity>true</applyVelocity>
   <filterActive>false</filterActive>
   <filterCutoff>1</filterCutoff>
   <filterResonance>0</filterResonance>
   <Attack>0</Attack>
   <Decay>0</Decay>
   <Sustain>1</Sustain>
   <Release>1000</Release>
   <muteGroup>{mute}</muteGroup>
   <midiOutChannel>-1</midiOutChannel>
   <midiOutNote>{slot.key}</midiOutNote>
   <isStopNote>false</isStopNote>
   <sampleSelectionAlgo>VELOCITY</sampleSelectionAlgo>
   <isHihat>-1</isHihat>
   <lower_cc>0</lower_cc>
   <higher_cc>127</higher_cc>
   <instrumentComponent>
    <component_id>0</component_id>
    <gain>1</gain>
    <layer>
     <filename>{escape(slot.sample)}</filename>
     <min>0</min>
     <max>1</max>
     <gain>1</gain>
     <pitch>0</pitch>
    </layer>
   </instrumentComponent>
  </instrument>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <name>{escape(name)}</name>
 <author>drumcat kit</author>
 <info>Built by drumcat from a catalog view on {utc_now()}.</info>
 <license>the samples' own licenses</license>
 <image></image>
 <imageLicense></imageLicense>
 <componentList>
  <drumkitComponent>
   <id>0</id>
   <name>Main</name>
   <volume>1</volume>
  </drumkitComponent>
 </componentList>
 <instrumentList>
{chr(10).join(instruments)}
 </instrumentList>
</drumkit_info>
"""


def build_kit(catalog: Catalog, view: str, out: Path, *, kit_format: str = "sfz", name: str | None = None,
              changes: RuleChanges | None = None) -> KitSummary:
    """Choose a sound per slot from the view, copy the samples into `out` and write the kit file there.
    Built in a hidden folder beside `out` and moved into place, so a failure leaves no half kit."""
    if kit_format not in FORMATS:
        raise DrumcatError(f"--format {kit_format!r}: use sfz or hydrogen")
    out = Path(out).expanduser().resolve()
    refuse_archive_overlap(out, scanned_archives(catalog))
    remove_abandoned_staging(out, files_not_of_kit)
    check_out_dir(out)
    name = name or out.name
    slots = choose_slots(read_kit_rows(catalog, view, changes))
    slots = [s for s in slots if s.src.is_file()]
    if not slots:
        raise DrumcatError(f"view {view!r} gives no sound for any kit slot (labels like Kick, Snare, Hihat)")
    with staging_beside(out, "kit") as staging:  # a failure leaves the previous kit at `out` untouched
        samples_dir = staging if kit_format == "hydrogen" else staging / "samples"
        samples_dir.mkdir(exist_ok=True)
        try:
            copy_samples(slots, samples_dir)
        except (AudioReadError, OSError) as exc:
            raise DrumcatError(f"cannot copy a sample into the kit ({exc})") from exc
        kit_file = "drumkit.xml" if kit_format == "hydrogen" else f"{_safe_file_name(name)}.sfz"
        text = hydrogen_xml(name, slots) if kit_format == "hydrogen" else sfz_text(name, slots)
        (staging / kit_file).write_text(text, encoding="utf-8")
        summary = KitSummary(str(out), kit_format, name, [
            {"slot": s.slot, "key": s.key, "sample": s.sample, "src": str(s.src),
             "confidence": None if s.confidence is None else round(s.confidence, 3)}
            for s in slots], kit_file)
        (staging / KIT_MARKER).write_text(json.dumps({**summary.as_dict(), "catalog": str(catalog.path),
                                                  "view": view, "built_at": utc_now()}, indent=2))
    return summary


def _safe_file_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_ ." else "_" for c in name).strip(". ")
    return cleaned or "kit"

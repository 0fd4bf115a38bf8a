"""Reviewed label rules for the training set: instrument names, GM keys and file names -> fine class.

Every rule here was read against the packages' real names. A name no rule claims is skipped, never
guessed; `python -m drumcat.model.train.dataset` reports what it skipped.
"""

from __future__ import annotations

import re

from drumcat.taxonomy import MISC, canonical

# General MIDI percussion keys (channel 10). Whistles (71, 72) have no class and are left out.
GM_KEYS: dict[int, str] = {
    35: "Kick", 36: "Kick", 37: "Rim", 38: "Snare", 39: "Clap", 40: "Snare",
    41: "Tom", 42: "Hihat", 43: "Tom", 44: "Hihat", 45: "Tom", 46: "Hihat", 47: "Tom", 48: "Tom",
    49: "Crash", 50: "Tom", 51: "Ride", 52: "China", 53: "Ride", 54: "Tambourine", 55: "Splash",
    56: "Cowbell", 57: "Crash", 58: "Vibraslap", 59: "Ride", 60: "Bongo", 61: "Bongo",
    62: "Conga", 63: "Conga", 64: "Conga", 65: "Timbale", 66: "Timbale", 67: "Agogo", 68: "Agogo",
    69: "Cabasa", 70: "Maracas", 73: "Guiro", 74: "Guiro", 75: "Clave", 76: "Perc", 77: "Perc",
    78: "Cuica", 79: "Cuica", 80: "Triangle", 81: "Triangle",
    # GS extensions most GM fonts carry: thin classes need every real sample there is.
    82: "Shaker", 83: "Bell", 84: "Bell",
}

# Kits whose keys depart from the GM map, read against each font's own instrument and sample names at
# every rendered key (`python -m drumcat.model.train.soundfont_keys FONT --preset N` prints them). Keyed by
# the font file's stem and the preset; None skips the key (a choke, a swish or swirl, layers of two
# instruments, a cymbal the font does not name). Every variant preset that plays the same sample on the key
# is listed too (Brush 1 and 2 beside Brush): tests/test_soundfont_keys.py holds one label per sound and key.
_ORCHESTRA_TIMPANI = dict.fromkeys(range(41, 54), "Timpani")  # the GS Orchestra kit tunes timpani on 41-53
_BRUSH_KIT = {39: "Snare", 40: None}  # 39 is a brush slap on the snare, 40 a brush swirl
_AVL_KIT = {48: None, 50: None, 52: None, 58: None, 60: None, 61: "Maracas"}  # hat swish, crash and
# ride chokes, "Paiste2002-22" (a 22-inch cymbal of unnamed kind) and maracas where GM has bongos
FONT_KEY_OVERRIDES: dict[tuple[str, int], dict[int, str | None]] = {
    ("FluidR3_GM", 48): {**_ORCHESTRA_TIMPANI, 59: "Crash"},  # 59: "Orchcrash"
    ("FluidR3_GM", 40): _BRUSH_KIT, ("FluidR3_GM", 41): _BRUSH_KIT, ("FluidR3_GM", 42): _BRUSH_KIT,
    ("MuseScore_General_Lite", 48): {**_ORCHESTRA_TIMPANI, 39: "Perc", 59: "Crash"},  # 39: "Castanet"
    ("MuseScore_General_Lite", 40): _BRUSH_KIT, ("MuseScore_General_Lite", 41): _BRUSH_KIT,
    ("MuseScore_General_Lite", 42): _BRUSH_KIT,
    ("sf_GMbank", 48): {**_ORCHESTRA_TIMPANI, 36: None, 39: "Perc", 59: None},  # 36: taiko + timpani layers
    ("sf_GMbank", 40): _BRUSH_KIT,  # 40: "Ocean Wave", a swirl
    # 36 and 59 layer a timpani or a crash with other sounds; 51 layers "Filter Snap" about 10 dB over
    # "Ride Ping" (measured against preset 0's key 51, the ride alone), in presets 24 and 25 too
    ("TimGM6mb", 48): {36: None, 51: None, 59: None}, ("TimGM6mb", 24): {51: None}, ("TimGM6mb", 25): {51: None},
    ("TimGM6mb", 40): _BRUSH_KIT,
    ("Black_Pearl_4_LV2", 0): _AVL_KIT, ("Red_Zeppelin_4_LV2", 0): _AVL_KIT,
}


def label_for_font_key(font: str, preset: int, key: int) -> str | None:
    """The fine class of `key` in a soundfont kit (font file stem, preset): the GM map's, unless the font
    puts something else there (FONT_KEY_OVERRIDES); None when the key is skipped."""
    overrides = FONT_KEY_OVERRIDES.get((font, preset), {})
    return overrides[key] if key in overrides else GM_KEYS.get(key)


# Hydrogen instrument names, first matching rule wins. Order matters: "ride bell" before "bell",
# "snare rimshot" is still a snare, "side stick" is a rim, "crash/ride" is ambiguous and skipped.
_NAME_RULES: list[tuple[str, str | None]] = [
    (r"crash\s*/\s*ride|ride-crash", None),
    (r"snare roll|hat swish|hat choke|splash choke|hi hat free", None),
    # A cajon is played as kick (thump) and snare (slap): which class it is depends on use. Skipped.
    (r"cajon", None),
    (r"rim ?click|side ?stick|\bstick\b|cross ?stick", "Rim"),
    (r"ride", "Ride"),
    (r"china", "China"),
    (r"splash", "Splash"),
    (r"crash", "Crash"),
    (r"cymbal", "Cymbal"),
    (r"hi-?hat|\bhh\b|\bhat\b|ohh\b", "Hihat"),
    (r"\bkick\b|bass ?drum|bassdrum|\bbd\b", "Kick"),
    (r"snare", "Snare"),
    (r"\btom|tomhi|floor tom", "Tom"),
    (r"clap", "Clap"),
    (r"cowbell", "Cowbell"),
    (r"tambourine", "Tambourine"),
    (r"maraca", "Maracas"),
    (r"shaker", "Shaker"),
    (r"bongo", "Bongo"),
    (r"conga", "Conga"),
    (r"agogo", "Agogo"),
    (r"clave", "Clave"),
    (r"woodblock|wood block|djembe|sangban.*head|dununba.*head|kenkeni.*head", "Perc"),
    (r"sangban.*bell|dununba.*bell|kenkeni.*bell", "Bell"),
    (r"\bzap\b|\bfx\b", "FX"),
]

# Sonic Pi sample names (file stems). Loops, melodic and ambient samples are not one-shots: skipped.
_SONIC_PI_RULES: list[tuple[str, str | None]] = [
    (r"^(bd_|drum_bass_|drum_heavy_kick|elec_(hollow|soft)_kick)", "Kick"),
    (r"^(sn_|drum_snare_|elec_(filt_|hi_|lo_|mid_)?snare)", "Snare"),
    (r"^drum_cymbal_(closed|pedal|open)", "Hihat"),
    (r"^drum_splash_", "Splash"),
    (r"^(drum_tom_|elec_fuzz_tom)", "Tom"),
    (r"^drum_cowbell", "Cowbell"),
    (r"^elec_triangle", "Triangle"),
    (r"^(elec_bell|perc_bell)", "Bell"),
    (r"^elec_cymbal", "Cymbal"),
    (r"^(perc_snap)", "Clap"),
    (r"^(elec_wood|glitch_perc)", "Perc"),
    (r"^(elec_(beep|blip|blup|bong|chime|flip|ping|plip|pop|tick|twang|twip)|vinyl_(scratch|backspin|rewind))",
     "FX"),
    (r"^perc_impact", "Metal"),
    (r"^misc_burp", "Vox"),
    (r"^vinyl_hiss", "Noise"),
]


def _first_match(rules: list[tuple[str, str | None]], text: str) -> str | None:
    lowered = text.lower()
    for pattern, label in rules:
        if re.search(pattern, lowered):
            return label
    return None


def label_for_instrument(name: str) -> str | None:
    """A Hydrogen drumkit.xml instrument name -> fine class, or None when ambiguous or unknown."""
    return _first_match(_NAME_RULES, name)


# Names too broad to contradict a label: a crash is a cymbal, and anything can be an effect.
_GENERIC_NAMES = {"Cymbal", "FX"}


def name_contradicts(label: str, file_stem: str) -> bool:
    """True when a file's own name names a class of another core folder than the label its folder or
    instrument gave it: a kit's Kick playing `tom-0105.wav`, a ride folder holding `Crash-03.wav`, a
    crash16 cymbal's `ride_cup4` layer, a hi-hat folder's `hh3snare1`. Such a file is skipped, not
    relabeled: either name may be the right one."""
    named = label_for_instrument(re.sub(r"[_-]", " ", file_stem))
    if named is None or named in _GENERIC_NAMES:
        return False
    named_core = canonical(named)
    return named_core != MISC and named_core != canonical(label)


def label_by_name(label: str, file_stem: str) -> str:
    """A file whose name says it is a hit played backwards ("Hat Reverse.wav", "zCrash Reversed.wav") is
    the Reverse class, whatever drum its folder or instrument names: a reversed hat swells into its
    attack and sounds like no hat. Any other file keeps `label`."""
    return "Reverse" if re.search(r"revers", file_stem, re.IGNORECASE) else label


def label_for_sonic_pi(stem: str) -> str | None:
    return _first_match(_SONIC_PI_RULES, stem)


# --- tidal-drum-machines: machines/MACHINE/machine-SUFFIX/*.wav ---------------------------------------
# The instrument suffix names the class. perc, misc and fx hold anything (basses, pianos, scratches,
# metronomes): a file there is taken only when its own name is a hand-percussion instrument's
# (_HAND_PERCUSSION_NAMES), never guessed. Reviewed against every folder of the collection.
TIDAL_SUFFIXES: dict[str, str] = {
    "bd": "Kick", "sd": "Snare", "hh": "Hihat", "oh": "Hihat", "cp": "Clap", "cr": "Crash", "rd": "Ride",
    "lt": "Tom", "mt": "Tom", "ht": "Tom", "rim": "Rim", "cb": "Cowbell", "sh": "Shaker", "tb": "Tambourine",
}
TIDAL_ANYTHING_SUFFIXES = {"perc", "misc", "fx"}
# The names the machines give their hand percussion, abbreviations included (the MC-303's eight-letter
# "Hicongao", "Lowoodbl", "Shortgui"; the TR-808's HC/MC/LC conga tunings and CL claves). Left out as
# unclear: bells, snaps, whistles, surdo, pandeiro, "Quid", "Toma", clicks and numbered FX.
_HAND_PERCUSSION_NAMES: list[tuple[str, str | None]] = [
    (r"agogo", "Agogo"), (r"bongo", "Bongo"), (r"cong[ao]|^[hml]c\d\d$", "Conga"),
    (r"timbal|^timb\d", "Timbale"), (r"clave|^cl$", "Clave"), (r"^tria|triangle|(mute|open)tria", "Triangle"),
    (r"guir|gui$", "Guiro"), (r"cuic", "Cuica"), (r"quijada|qijada|vibrasla", "Vibraslap"),
    (r"wood ?bl|^wblk$|^blocks?$", "Perc"),
]
# A file name may name a finer class than its folder (a "sh" folder holding Cabasa.wav and Maracas.wav,
# a "cr" folder holding China.wav). It refines the folder's class only within these families.
_REFINEMENTS: dict[str, set[str]] = {
    "Shaker": {"Shaker", "Cabasa", "Maracas"},
    "Crash": {"Crash", "China", "Splash", "Cymbal"},
}


def label_for_tidal(suffix: str, stem: str) -> str | None:
    """A tidal-drum-machines folder suffix and file stem -> fine class, or None (skipped)."""
    if suffix.lower() in TIDAL_ANYTHING_SUFFIXES:
        return _first_match(_HAND_PERCUSSION_NAMES, stem)
    label = TIDAL_SUFFIXES.get(suffix.lower())
    if label is None:
        return None
    refined = label_for_instrument(stem.replace("_", " ").replace("-", " "))
    return refined if refined in _REFINEMENTS.get(label, set()) else label


# --- Dirt-Samples: FOLDER/*.wav ---------------------------------------------------------------------
# Folders whose every file is a one-shot of one class. Read against the files: "cr" holds ride
# cymbals (RIDED*.wav), "808cy" the 808's cymbal, "hc"/"ho" closed and open hats.
DIRT_FOLDERS: dict[str, str] = {
    "808bd": "Kick", "808sd": "Snare", "808cy": "Crash", "808oh": "Hihat", "808hc": "Conga", "808mc": "Conga",
    "808lc": "Conga", "808ht": "Tom", "808mt": "Tom", "808lt": "Tom", "909": "Kick",
    "bd": "Kick", "clubkick": "Kick", "hardkick": "Kick", "popkick": "Kick", "kicklinn": "Kick",
    "sn": "Snare", "sd": "Snare", "hc": "Hihat", "ho": "Hihat", "linnhats": "Hihat",
    "cp": "Clap", "realclaps": "Clap", "cr": "Ride", "ht": "Tom", "mt": "Tom", "lt": "Tom",
    "cb": "Cowbell", "rs": "Rim", "rm": "Rim",
}
# Kit folders whose file names say the class, each with the prefix its names carry after Dirt's ordering
# prefix "000_" (a regular expression: "dx_?" takes "DX_Snare" and "DXShaker"). One rule list, first match
# wins; unnamed hits, "perc", "hit", "fx", flams, cymbal grabs, kick+snare layers and hits played backwards
# under a short name ("bd-rev") are skipped.
DIRT_NAMED_FOLDERS: dict[str, str] = {
    "808": "", "gretsch": "", "house": "", "drumtraks": "dt ", "dr2": "dr110", "dr55": "dr55 ",
    "electro1": "et1", "tech": "tn1", "hh27": "hh27",
    # "hh" is a kit of the series "hh27" belongs to (hh3closedhh, hh3kick1, hh3snare1, ...), not a folder of
    # hats: read as all Hihat until run 66, it filed two kicks, three hits and two percs as hats.
    "hh": "hh3",
    # Added in session 46, read against every file: four kits of one sample series, the Oberheim DX,
    # Mattel's Synsonics, the Sequential Circuits Tom, and small named kits.
    "ab": "ab2", "db": "dbs12", "hardcore": "hc", "jungle": "jungle4", "odx": "dx_?", "incoming": "mattel +",
    "sequential": "tom ", "voodoo": "voodoo", "haw": "hawaiian-", "ifdrums": "ignore", "less": "",
    "peri": "", "ul": "ul(noisey-)?", "feel": "", "glitch": "", "glitch2": "", "jazz": "", "future": "",
    "auto": "", "short": "sampleoftheday-gtt-", "world": "", "v": "v_",
}
_DIRT_NAME_RULES: list[tuple[str, str | None]] = [
    (r"kicksnare|cymbalgrab|cymbalrub|flam|hit\d|perc\d|^p\d$|^fx$|(-|cym)rev$", None),
    (r"^cb$|cowbell", "Cowbell"), (r"^cl$", "Clave"), (r"^ma$", "Maracas"), (r"^rs$|rimshot|^rim$", "Rim"),
    (r"^cp$|clap|clp", "Clap"), (r"cabasa", "Cabasa"), (r"tambourine", "Tambourine"), (r"shake", "Shaker"),
    (r"conga", "Conga"), (r"ride", "Ride"), (r"crash|cym$", "Crash"),
    (r"^ch$|^oh$|hat|hh$|cht$|oht$|^hh(\d|x)", "Hihat"),
    (r"kick|kik|^bd(\b|\d)", "Kick"), (r"snare|snr|^sn$|^sd\b|-sd$", "Snare"), (r"tom", "Tom"),
]


def dirt_name(folder: str, stem: str) -> str:
    """A Dirt-Samples file's own name: lower case, without Dirt's ordering prefix and its folder's prefix."""
    name = re.sub(r"^\d{3}_", "", stem).lower()
    return re.sub(f"^({DIRT_NAMED_FOLDERS.get(folder, '')})", "", name).strip()


def label_for_dirt(folder: str, stem: str) -> str | None:
    """A Dirt-Samples folder and file stem -> fine class, or None (folder not one-shot drums, or unnamed)."""
    if folder in DIRT_FOLDERS:
        return DIRT_FOLDERS[folder]
    if folder in DIRT_NAMED_FOLDERS:
        return _first_match(_DIRT_NAME_RULES, dirt_name(folder, stem))
    return None


# --- Per-file exceptions -----------------------------------------------------------------------------
# Sounds whose name says one class and whose sound another, found where the kit folds' models disagreed
# with the label and read against the sound (docs/model-history.md gives each one's evidence). Keyed by
# collection, folder and name: a Hydrogen kit and instrument, a tidal folder and file stem, a Dirt folder
# and file stem. A class relabels the sound; None skips it, like any sound whose class is not clear.
FILE_EXCEPTIONS: dict[tuple[str, str, str], str | None] = {
    # "OH", but it opens with a clap's three bursts 12 ms apart, the level in each 4 ms of its first 60 ms
    # within 4 dB of cp/HANDCLP0.wav's; an open hat rings from its attack ("jazz" is a copy of "house")
    ("Dirt-Samples", "house", "004_OH"): None, ("Dirt-Samples", "jazz", "004_OH"): None,
    # The E-mu Drumulator's twelve sounds include a ride and no crash (E&MM review, June 1983): its one
    # cymbal, filed under "cr", is the ride
    ("tidal-drum-machines", "emudrumulator-cr", "Cymbal"): "Ride",
    # Two "hats" with 93-95% of their energy below 150 Hz: whatever they are, they do not sound as hats
    ("hydrogen", "ElectricEmpireKit", "Hat Closed Bs"): None,
    ("hydrogen", "ElectricEmpireKit", "Hat Ring 2"): None,
}


def with_exceptions(collection: str, folder: str, name: str, label: str | None) -> str | None:
    """`label` as the rules gave it for one sound, unless FILE_EXCEPTIONS says otherwise."""
    return FILE_EXCEPTIONS.get((collection, folder, name), label)

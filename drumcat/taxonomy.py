"""The class taxonomy: 34 fine classes, the canonical (core) mapping, and the reference design's files.

The catalog holds these as tables (`classes`, `canonical_map`) that the views read; this module is the
default they are filled from, the reader of the reference design's `label_mapping.json` and
`canonical_mapping.json`, and the one fine-to-core matrix (`core_membership`) that training's core loss
and the review order's core margin both sum probabilities with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drumcat.errors import DrumcatError

FINE_CLASSES: list[str] = [
    "Agogo", "Bell", "Bongo", "Cabasa", "China", "Clap", "Clave", "Conga", "Cowbell", "Crash",
    "Cuica", "Cymbal", "FX", "Guiro", "Hihat", "Kick", "Maracas", "Metal", "Noise", "Perc",
    "Reverse", "Rim", "Ride", "Shaker", "Sizzle", "Snare", "Splash", "Tambourine", "Timbale",
    "Timpani", "Tom", "Triangle", "Vibraslap", "Vox",
]
CORE_CLASSES: list[str] = ["Crash", "Hihat", "Kick", "Ride", "Snare", "Tom"]
MISC = "misc"

_COLLAPSE = {
    "China": "Crash", "Splash": "Crash", "Cymbal": "Crash", "Sizzle": "Crash",
    "Rim": "Snare",
    "Timbale": "Tom", "Timpani": "Tom",
}


def default_canonical_map(labels: list[str] | None = None) -> dict[str, str]:
    """Fine label -> core label or "misc": the built-in mapping of the reference design."""
    mapping = {}
    for label in labels or FINE_CLASSES:
        mapping[label] = label if label in CORE_CLASSES else _COLLAPSE.get(label, MISC)
    return mapping


def canonical(label: str, mapping: dict[str, str] | None = None) -> str:
    return (mapping or default_canonical_map()).get(label, MISC)


def core_membership(labels: list[str], mapping: dict[str, str] | None = None) -> np.ndarray:
    """(labels, core classes + misc) 0/1 matrix: probabilities @ it sums each core class's fine classes."""
    groups = [*CORE_CLASSES, MISC]
    targets = [canonical(label, mapping) for label in labels]
    groups += sorted(set(targets) - set(groups))  # a mapping may name folders of its own
    return np.eye(len(groups), dtype=np.float32)[[groups.index(target) for target in targets]]


def core_margins(probabilities: np.ndarray, labels: list[str], mapping: dict[str, str] | None = None) -> np.ndarray:
    """Per row: the probability of the core class the top fine label files the sound under, summed over
    its fine classes, minus the largest other core class's. China at 0.5 against Crash at 0.4 is a small
    top-two margin but no doubt about the folder; a negative margin means the folder is likely wrong."""
    membership = core_membership(labels, mapping)
    by_core = np.asarray(probabilities, dtype=np.float64) @ membership
    rows = np.arange(len(by_core))
    filed = membership[np.argmax(probabilities, axis=1)].argmax(axis=1)
    own = by_core[rows, filed].copy()
    by_core[rows, filed] = -np.inf
    return own - np.maximum(by_core.max(axis=1), 0.0)


def read_label_mapping(path: Path) -> list[str]:
    """`label_mapping.json`: a JSON list of class names in the model's output order.

    A dict of {index: name} (another common shape) is accepted too.
    """
    data = _read_json(path)
    if isinstance(data, dict):
        try:
            data = [data[key] for key in sorted(data, key=int)]
        except (ValueError, TypeError) as exc:
            raise DrumcatError(f"{path}: expected a list of names or {{index: name}}") from exc
    if not isinstance(data, list) or not all(isinstance(item, str) and item for item in data):
        raise DrumcatError(f"{path}: expected a JSON list of class names, e.g. [\"Kick\", \"Snare\"]")
    if len(set(data)) != len(data):
        raise DrumcatError(f"{path}: class names must be unique")
    return data


def read_canonical_mapping(path: Path) -> dict[str, str]:
    """`canonical_mapping.json`: {fine: canonical}; a canonical of null or "" means misc."""
    data = _read_json(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise DrumcatError(f"{path}: expected a JSON object {{\"fine label\": \"canonical label\"}}")
    return {fine: (target or MISC) for fine, target in data.items()}


def _read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DrumcatError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DrumcatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DrumcatError(f"{path}: not a UTF-8 JSON text file") from exc

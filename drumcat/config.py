"""drumcat.toml: typed settings with documented defaults, strict about unknown keys and wrong types."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from drumcat.errors import DrumcatError

CONFIG_FILENAME = "drumcat.toml"
# Keys renamed since: an old file keeps working (the new name is the one documented).
_RENAMED = {("taxonomy", "misc_threshold"): "threshold"}


@dataclass
class CatalogConfig:
    path: str = "drumcat.db"
    """The SQLite catalog file."""


@dataclass
class ScanConfig:
    formats: list[str] = field(default_factory=lambda: ["wav", "aif", "aiff", "flac", "ogg", "mp3"])
    """File extensions to catalog, compared case-insensitively."""
    hash_algorithm: str = "sha256"
    """hashlib algorithm for content hashes; overrides and predictions are keyed by them."""
    audio_stats: bool = True
    """Decode each unique sound once to measure its peak and RMS level."""
    workers: int = 0
    """Worker processes for hashing and reading; 0 means one per CPU core."""


@dataclass
class ModelConfig:
    path: str = ""
    """A .keras file with its .json card beside it; empty means the shipped default model."""
    batch_size: int = 256
    """Sounds per committed transaction, and per model call when the model runs on Keras."""
    workers: int = 0
    """Worker processes that decode, compute features and run a LiteRT model; 0 means one per CPU core."""
    trust_unsafe: bool = False
    """Allow Keras unsafe deserialization (e.g. Lambda layers). Only for models you made yourself."""


@dataclass
class TaxonomyConfig:
    """The files a model or the rules come from, and the rules themselves (drumcat/storage/rules.py `Rules`). A rule
    left out here is the catalog's; a rule set here applies to each command that reads the views, and is
    stored in the catalog only by `drumcat rules apply`."""

    label_mapping: str = ""
    """Optional label_mapping.json (a list of class names), the reference design's format."""
    canonical_mapping: str = ""
    """Optional canonical_mapping.json ({fine: canonical}); empty means the catalog's mapping."""
    overrides: str = ""
    """Optional overrides.jsonl applied with the rules."""
    threshold: float | None = None
    """Below this confidence a sample is routed to misc (catalog default 0.5)."""
    uncertain_margin: float | None = None
    """A top-two gap under this lists a sample in `uncertain` (catalog default 0.15)."""
    dedup: bool | str | None = None
    """Trees hold one file per content hash ("exact", or true), per near-duplicate group ("near"), or every
    copy ("off", or false); catalog default "exact"."""
    allow_all: bool | None = None
    """A folder per fine class in the default tree (catalog default false)."""
    target_labels: list[str] | None = None
    """Canonical labels that get their own folder (catalog default: the six core classes)."""


@dataclass
class Config:
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    taxonomy: TaxonomyConfig = field(default_factory=TaxonomyConfig)
    base_dir: Path = field(default_factory=Path.cwd)
    """Relative paths in the config are resolved against this folder (the config file's folder)."""
    source: Path | None = None
    """The file the settings were read from, if any."""

    def resolve(self, value: str) -> Path:
        """An absolute path for a path-valued setting."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def catalog_path(self) -> Path:
        return self.resolve(self.catalog.path)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name not in ("base_dir", "source")}


def load_config(path: Path | None = None) -> Config:
    """Read `path`, or ./drumcat.toml if it exists, or return the defaults."""
    if path is None:
        candidate = Path.cwd() / CONFIG_FILENAME
        if not candidate.is_file():
            return Config()
        path = candidate
    path = Path(path)
    if not path.is_file():
        raise DrumcatError(f"{path}: config file not found; pass an existing file with --config")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DrumcatError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
    config = config_from_dict(data, origin=str(path))
    config.base_dir = path.resolve().parent
    config.source = path.resolve()
    return config


def config_from_dict(data: dict[str, Any], origin: str = "config") -> Config:
    config = Config()
    hints = get_type_hints(Config)
    for section_name, values in data.items():
        if section_name not in _SECTIONS:
            raise DrumcatError(
                f"{origin}: unknown section [{section_name}]; known sections: {', '.join(_SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise DrumcatError(f"{origin}: [{section_name}] must be a table of settings")
        section = getattr(config, section_name)
        _apply_section(section, values, f"{origin}: {section_name}", hints[section_name])
    return config


def _apply_section(section: Any, values: dict[str, Any], where: str, section_type: type) -> None:
    field_types = get_type_hints(section_type)
    section_name = where.rsplit(": ", 1)[-1]
    for key, value in values.items():
        key = _RENAMED.get((section_name, key), key)
        if key not in field_types:
            raise DrumcatError(f"{where}.{key}: unknown key; known keys: {', '.join(field_types)}")
        setattr(section, key, _checked(value, field_types[key], f"{where}.{key}"))


def _checked(value: Any, expected: Any, where: str) -> Any:
    """Validate one value against its declared type; ints are accepted where floats are expected."""
    optional = [t for t in getattr(expected, "__args__", ()) if t is not type(None)]
    if type(None) in getattr(expected, "__args__", ()) and len(optional) == 1:
        expected = optional[0]  # `X | None`: None only means "not set", a file always gives a value
    elif len(optional) > 1:  # `bool | str | None`: one of those types
        if not isinstance(value, tuple(optional)):
            names = " or ".join(t.__name__ for t in optional)
            raise DrumcatError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected == list[str]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise DrumcatError(f"{where}: expected a list of strings, got {value!r}")
    if expected is int and isinstance(value, bool):
        raise DrumcatError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, expected):
        raise DrumcatError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value

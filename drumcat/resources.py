"""Where drumcat's own data files live, in a source checkout and in an installed wheel alike."""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    """The wheel puts data inside the package; a checkout keeps it at the repository top level."""
    inside = _PACKAGE_DIR / name
    return inside if inside.is_dir() else _PACKAGE_DIR.parent / name


def migrations_dir() -> Path:
    return _data_dir("migrations")


def models_dir() -> Path:
    return _data_dir("models")


DEFAULT_MODEL_NAME = "drumcat-v2"


def default_model_path() -> Path:
    return models_dir() / f"{DEFAULT_MODEL_NAME}.keras"

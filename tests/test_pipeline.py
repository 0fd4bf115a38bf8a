"""The per-file pipeline that worker processes run."""

from __future__ import annotations

from pathlib import Path

import pytest

from drumcat.errors import DrumcatError
from drumcat.model.bundle import load_bundle
from drumcat.model.pipeline import ChunkProcessor


def test_a_worker_refuses_an_export_changed_after_the_parent_checked_it(tmp_path: Path) -> None:
    bundle = load_bundle()
    export = tmp_path / "m.tflite"
    export.write_bytes(bundle.lite_path.read_bytes()[:-1] + b"\0")
    processor = ChunkProcessor(bundle.card.features, export, bundle.card.litert_sha256)
    with pytest.raises(DrumcatError, match=r"m\.tflite: sha256 .* does not match its card"):
        processor([("h", "any.wav")])

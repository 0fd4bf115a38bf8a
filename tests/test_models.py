"""Model bundles and cards: mismatches, changed files and unsafe models are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drumcat.audio.features import FeatureRecipe
from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelCard, add_model, card_path_for, lite_path_for, load_bundle
from drumcat.model.runtime import KerasRuntime
from drumcat.resources import default_model_path
from drumcat.storage.catalog import Catalog
from drumcat.storage.results import register_model
from tests.helpers import MFCC, tiny_model


def test_a_changed_lite_export_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card_path_for(model).write_text(card_path_for(default_model_path()).read_text())
    lite_path_for(model).write_bytes(lite_path_for(default_model_path()).read_bytes()[:-1] + b"\0")
    with pytest.raises(DrumcatError, match=r"m\.tflite: sha256 .* does not match its card"):
        load_bundle(model)
    assert isinstance(load_bundle(model, lite=False).runtime, KerasRuntime)


def test_card_whose_labels_do_not_match_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card = json.loads(card_path_for(default_model_path()).read_text())
    card["labels"] = card["labels"][:-1]
    card_path_for(model).write_text(json.dumps(card))
    with pytest.raises(DrumcatError, match="outputs but its card lists 33 labels"):
        load_bundle(model)  # no export beside it: checked on Keras
    lite_path_for(model).write_bytes(lite_path_for(default_model_path()).read_bytes())
    with pytest.raises(DrumcatError, match=r"gives outputs \[34, \d+\], but the card says .* 33 labels"):
        load_bundle(model)


def test_changed_weights_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes() + b"\0")
    card_path_for(model).write_text(card_path_for(default_model_path()).read_text())
    with pytest.raises(DrumcatError, match="does not match its card"):
        load_bundle(model)


def test_unsafe_model_is_refused_without_trust(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "lambda.keras", 3, with_lambda=True)
    with pytest.raises(DrumcatError, match="safe mode refuses it; pass --trust-model"):
        add_model(model, ["Kick", "Snare", "Hihat"], MFCC)
    add_model(model, ["Kick", "Snare", "Hihat"], MFCC, trust_unsafe=True)
    with pytest.raises(DrumcatError, match="unsafe"):
        load_bundle(model)
    assert load_bundle(model, trust_unsafe=True).card.labels == ["Kick", "Snare", "Hihat"]


def test_model_add_leaves_a_users_own_lite_file_alone(tmp_path: Path) -> None:
    """`model add` wrote its LiteRT export over a NAME.tflite beside the model, and deleted it when the
    export failed."""
    model = tiny_model(tmp_path / "m.keras", 3, with_lambda=False)
    lite_path_for(model).write_bytes(b"the user's own export")
    with pytest.raises(DrumcatError, match=r"m\.tflite: a file is where drumcat writes"):
        add_model(model, ["Kick", "Snare", "Hihat"], MFCC)
    assert lite_path_for(model).read_bytes() == b"the user's own export"
    assert not card_path_for(model).exists()
    add_model(model, ["Kick", "Snare", "Hihat"], MFCC, overwrite=True)  # --force: replaced
    assert lite_path_for(model).read_bytes() != b"the user's own export"


def test_byo_card_with_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "m.keras", 4, with_lambda=False)
    wrong = FeatureRecipe(feature_type="mfcc", n_mfcc=20, n_fft=2048, hop_length=512)
    with pytest.raises(DrumcatError, match="expects input \\[40, 44, 1\\]"):
        add_model(model, ["Kick", "Snare", "Hihat", "Crash"], wrong)


def test_a_card_without_created_at_keeps_its_hash_and_its_model_id(tmp_path: Path, catalog: Catalog) -> None:
    """A hand-written card for a user's model often has no created_at: reading it must not invent one,
    or every `infer` registers a new model and infers everything again."""
    model = tmp_path / "m.keras"
    model.write_bytes(default_model_path().read_bytes())
    card = json.loads(card_path_for(default_model_path()).read_text())
    del card["created_at"]
    card_path_for(model).write_text(json.dumps(card))
    first, second = ModelCard.read(card_path_for(model)), ModelCard.read(card_path_for(model))
    assert first.created_at is None and first.card_hash() == second.card_hash()
    first_id = register_model(catalog, load_bundle(model).card, model)
    assert register_model(catalog, load_bundle(model).card, model) == first_id


def test_the_shipped_card_reads_and_writes_back_byte_for_byte() -> None:
    """Its hash is the model's id in every catalog: a new recipe field (the tail) must not change how an
    existing card is written, or every catalog would take the shipped model for a new one."""
    from drumcat.resources import models_dir

    for path in models_dir().glob("*.json"):
        assert ModelCard.read(path).to_json() == path.read_text(encoding="utf-8"), path

"""`drumcat train` end to end on a small real dataset of synthesized one-shots: selection, refit, card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from drumcat.audio.synth import render, write_sample
from drumcat.model.bundle import load_bundle
from drumcat.model.metrics import apply_temperature
from drumcat.model.train.dataset import Clip, without_duplicates
from drumcat.model.train.train import STUDENT_WIDTHS, Teacher, evaluate_split, features_of, load_split, train

KITS = {"kit-a": "train", "kit-b": "train", "kit-c": "validation", "kit-d": "test"}


def small_dataset(root: Path) -> Path:
    rows = []
    for kit_index, (kit, split) in enumerate(KITS.items()):
        for label in ("Kick", "Snare", "Hihat"):
            for take in range(6):
                path = root / "clips" / f"{kit}-{label}-{take}.wav"
                write_sample(path, render(label, seed=100 * kit_index + take), sample_rate=22_050)
                rows.append({"path": str(path.relative_to(root)), "label": label, "source": "synth", "kit": kit,
                             "split": split, "origin": f"{label} {take}"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "summary.json").write_text(json.dumps({"per_source": {"synth": len(rows)}}))
    return root


def test_train_selects_refits_and_writes_a_loadable_card(tmp_path: Path) -> None:
    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "models" / "tiny.keras"
    card = train(dataset, out, epochs=2, copies=1)

    bundle = load_bundle(out)  # the weights hash, labels and input shape all match the card
    assert bundle.card.labels == card.labels and len(card.labels) == 34
    test = card.metrics["test"]
    assert test["fine"]["samples"] == 18
    # The card's figures are the shipped model's own: measured again here from the saved bundle.
    clips = load_split(dataset, "test", card.labels)
    again = evaluate_split(bundle.predict(features_of(clips.clips))[0], clips.labels, card.labels)
    assert again["core"]["accuracy"] == test["core"]["accuracy"]
    assert card.metrics["seeds"]["seeds"] == [1] and card.metrics["seeds"]["core_accuracy"]["std"] == 0.0
    assert set(test["per_source"]["sources"]) == {"synth"}
    assert set(card.metrics["test_before_refit"]) == {"fine", "core"}
    assert "refit on train + validation" in card.training["selection"]
    assert card.training["clips_per_split"]["validation"] == {"Hihat": 6, "Kick": 6, "Snare": 6}
    assert 0.25 <= card.temperature <= 5.0


def test_identical_clips_are_dropped_once() -> None:
    hit = render("Kick", seed=1)
    clips = [Clip(hit, "Kick", "a", "kit-a", "1"), Clip(hit.copy(), "Kick", "b", "kit-b", "2"),
             Clip(render("Kick", seed=2), "Kick", "a", "kit-a", "3")]
    kept, dropped = without_duplicates(clips)
    assert dropped == 1
    assert [c.origin for c in kept] == ["1", "3"]
    assert not np.shares_memory(kept[0].samples, kept[1].samples)


def test_a_student_distilled_from_a_trained_model(tmp_path: Path) -> None:
    dataset = small_dataset(tmp_path / "dataset")
    teacher_path = tmp_path / "models" / "teacher.keras"
    train(dataset, teacher_path, epochs=1, copies=1, refit=False)
    card = train(dataset, tmp_path / "models" / "student.keras", epochs=1, copies=1, refit=False,
                 teacher_path=teacher_path)

    student = load_bundle(tmp_path / "models" / "student.keras", lite=False).keras_model
    assert [student.get_layer(f"conv{i}").filters for i in range(4)] == list(STUDENT_WIDTHS)
    assert "teacher.keras" in card.training["distillation"]["teacher"]

    teacher = Teacher.load(teacher_path)
    assert (teacher.weight, teacher.temperature) == (0.5, 2.0)
    x = features_of([render("Snare", seed=5), render("Kick", seed=6)])
    hard = np.eye(34, dtype=np.float32)[[1, 2]]
    blended = teacher.soft_targets(x, hard)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0, rtol=1e-5)
    softened = apply_temperature(teacher.model.predict(x, verbose=0).astype(np.float64), 2.0)
    np.testing.assert_allclose(blended, 0.5 * hard + 0.5 * softened, rtol=1e-5, atol=1e-6)

"""Metric and calibration math."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drumcat.errors import DrumcatError
from drumcat.model.metrics import calibrated


def test_a_model_that_outputs_nan_is_a_clear_error_not_a_stored_vector() -> None:
    outputs = np.array([[0.5, 0.5, 0.0], [np.nan, 0.2, 0.1]], dtype=np.float32)
    with pytest.raises(DrumcatError, match=r"broken\.keras: the model's outputs hold NaN or infinity"):
        calibrated(outputs, np.zeros((2, 4)), 1.0, Path("broken.keras"))
    finite, _ = calibrated(outputs[:1], np.zeros((1, 4)), 1.0, Path("broken.keras"))
    np.testing.assert_allclose(finite, [[0.5, 0.5, 0.0]])


def test_the_kit_bootstrap_widens_when_the_errors_sit_in_a_few_kits() -> None:
    from drumcat.model.metrics import kit_bootstrap_interval

    kits = [f"kit-{k}" for k in range(10) for _ in range(20)]
    truth = ["Kick"] * 100 + ["Snare"] * 100
    spread = list(truth)
    for kit in range(10):  # two errors in every kit
        spread[20 * kit] = spread[20 * kit + 1] = "Snare" if truth[20 * kit] == "Kick" else "Kick"
    clustered = list(truth)
    clustered[:20] = ["Snare"] * 20  # the same 20 errors, all in kit-0
    classes = ["Kick", "Snare"]
    even = kit_bootstrap_interval(truth, [spread], kits, classes)
    lumped = kit_bootstrap_interval(truth, [clustered], kits, classes)
    assert even["accuracy"] == [0.9, 0.9]  # every draw of kits scores the same
    assert lumped["accuracy"][0] < 0.9 - 0.05 and lumped["accuracy"][1] == 1.0
    perfect = kit_bootstrap_interval(truth, [truth, truth], kits, classes)
    assert perfect["accuracy"] == [1.0, 1.0] and perfect["macro_f1"] == [1.0, 1.0] and perfect["kits"] == 10


def test_a_csv_names_each_files_kit_and_a_file_without_one_is_its_own(tmp_path: Path) -> None:
    from drumcat.model.evaluate import read_groups, read_labeled

    (tmp_path / "labels.csv").write_text("path,label,kit\na.wav,Kick,808\nb.wav,Snare,808\nc.wav,Kick,\n")
    pairs = read_labeled(tmp_path / "labels.csv")
    groups = read_groups(tmp_path / "labels.csv", pairs)
    assert [groups[path] for path, _ in pairs] == ["808", "808", str((tmp_path / "c.wav").resolve())]


def test_errors_by_kit_puts_the_kit_with_the_most_mistakes_first_with_its_commonest_one() -> None:
    from drumcat.model.metrics import errors_by_kit

    truth = ["Crash", "Crash", "Crash", "Kick", "Kick", "Snare", "Snare"]
    guess = ["Hihat", "Hihat", "Ride", "Kick", "Kick", "Tom", "Snare"]
    kits = ["808", "808", "808", "909", "909", "live", "live"]
    assert errors_by_kit(truth, guess, kits) == [
        {"kit": "808", "files": 3, "wrong": 3, "accuracy": 0.0, "most frequent mistake": "Crash→Hihat 2"},
        {"kit": "live", "files": 2, "wrong": 1, "accuracy": 0.5, "most frequent mistake": "Snare→Tom 1"},
        {"kit": "909", "files": 2, "wrong": 0, "accuracy": 1.0, "most frequent mistake": ""},
    ]

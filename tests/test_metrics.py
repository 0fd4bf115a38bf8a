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

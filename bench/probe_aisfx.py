"""Probe: how far a linear classifier gets on aisfx's pretrained sound-effects embeddings (issue #13's
"worth a probe"), on the same whole-kit splits as the default model: fitted on the training kits, its
regularization chosen on the validation kits, measured once on the test kits (core accuracy, macro-F1).

aisfx (CC BY 4.0) ships a PyTorch checkpoint in its wheel; it is a training-time extra only, so it runs
in an environment of its own, not drumcat's:

    python3 -m venv build/probe-env
    build/probe-env/bin/pip install torch==2.13.0 aisfx librosa scikit-learn "setuptools<81"
    build/probe-env/bin/python bench/probe_aisfx.py --dataset build/dataset [--teacher-out FILE]

Measured (dataset of 6,236 clips, 2 cores): 350 s to embed; test core accuracy 0.850, macro-F1 0.806
(the CNN: 0.840 / 0.772, mean of three seeds).

`--teacher-out` also writes the probe as a distillation teacher for `drumcat train --teacher-targets`:
for every training and validation clip, probabilities over the fine classes from a classifier that
never saw that clip's kit (grouped k-fold over kits), once fitted within the training kits (for the
run that selects the epoch on validation) and once within training + validation kits (for the refit).
The test kits are never used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def embed(dataset: Path, rows: list[dict[str, str]]) -> np.ndarray:
    import librosa
    import numpy.core.multiarray
    import torch
    from aisfx.inference import (
        EMB_BLOCK_LENGTH,
        F_MAX,
        F_MIN,
        MEL_BINS,
        SPEC_BLOCK_LENGTH,
        SPEC_HOP_LENGTH,
        load_bestModel,
        load_weights,
    )
    from aisfx.preprocessing import blocking, spectrogram_normalize

    torch.set_num_threads(2)
    allowed = [numpy.core.multiarray.scalar, np.dtype,
               *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32"))]
    with torch.serialization.safe_globals(allowed):  # the wheel's checkpoint, loaded with weights_only
        weights, datasets = load_weights("cpu")
    model = load_bestModel(weights, datasets, "cpu")

    def spectrogram(path: str) -> np.ndarray:  # aisfx's librosa recipe, one 100-frame block
        y, rate = librosa.load(str(dataset / path), sr=44_100)
        y = y / max(np.abs(y).max(), 1e-9)
        mel = librosa.feature.melspectrogram(y=y, sr=rate, n_mels=MEL_BINS, norm=1.0, fmin=F_MIN, fmax=F_MAX,
                                             htk=True, power=2.0, hop_length=SPEC_HOP_LENGTH,
                                             win_length=SPEC_BLOCK_LENGTH)
        return blocking(spectrogram_normalize(np.log10(mel * 10_000.0 + 1).T), EMB_BLOCK_LENGTH, 50, False)[0]

    out = []
    for start in range(0, len(rows), 64):
        batch = np.stack([spectrogram(r["path"]) for r in rows[start:start + 64]])
        with torch.no_grad():
            out.append(model.get_embedding(torch.Tensor(batch)).numpy())
    return np.concatenate(out)


def main() -> None:
    from bench.probe import linear_probe, probe_arguments

    linear_probe("aisfx", embed, probe_arguments(__doc__.splitlines()[0]).parse_args())


if __name__ == "__main__":
    main()

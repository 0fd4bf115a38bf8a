"""LiteRT quantization benchmark: the shipped model exported as float32 (the reference: the weights as
trained), with dynamic-range int8 weights (what the shipped export stores, `--lite-weights int8`) and with
float16 weights; per export its size, its forward pass
per clip (batches of 256, one thread, median of 5) and how often its core decisions agree with float32's
on the validation kits' clips. The test kits are never read.

    python bench/quantize.py [--dataset build/dataset] [--model models/drumcat-v2.keras]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.model.bundle import ModelCard, card_path_for  # noqa: E402
from drumcat.model.runtime import LITE_WEIGHTS, LiteRuntime, lite_flatbuffer, two_output_model  # noqa: E402
from drumcat.model.train.train import features_of, load_split  # noqa: E402
from drumcat.taxonomy import FINE_CLASSES, canonical, core_decisions  # noqa: E402

BATCH = 256


def probabilities_and_time(runtime: LiteRuntime, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Every clip's probabilities, and the forward pass's milliseconds per clip (one batch, median of 5)."""
    probabilities = np.concatenate([runtime.run(x[s:s + BATCH])[0] for s in range(0, len(x), BATCH)])
    times = []
    for _ in range(5):
        started = time.perf_counter()
        runtime.run(x[:BATCH])
        times.append((time.perf_counter() - started) / len(x[:BATCH]) * 1000)
    return probabilities, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--model", type=Path, default=Path("models/drumcat-v2.keras"))
    args = parser.parse_args()
    import keras

    card = ModelCard.read(card_path_for(args.model))
    two_outputs = two_output_model(keras.models.load_model(args.model, safe_mode=True), card.embedding_layer)
    split = load_split(args.dataset, "validation", list(FINE_CLASSES))
    x = features_of(split.clips, card.features).astype(np.float32)
    truth = [canonical(FINE_CLASSES[i]) for i in split.labels]
    reference = None
    for weights in LITE_WEIGHTS:
        content = lite_flatbuffer(two_outputs, weights)
        probabilities, ms = probabilities_and_time(LiteRuntime(content, args.model, threads=1), x)
        core = core_decisions(probabilities, list(FINE_CLASSES)).labels
        reference = reference or core
        agree = np.mean([a == b for a, b in zip(core, reference, strict=True)])
        right = np.mean([a == b for a, b in zip(core, truth, strict=True)])
        print(f"{weights + ' weights':<16} {len(content) / 1e6:.2f} MB, forward {ms:.3f} ms/clip, core decisions "
              f"as float32's {agree:.4f}, core accuracy {right:.4f} on {len(x)} validation clips")


if __name__ == "__main__":
    main()

"""Probe: how far a linear classifier gets on musicnn's pretrained music-tagging embeddings (issue #13's
"worth a probe"), on the same whole-kit splits as the default model (bench/probe.py says how).

musicnn (ISC) ships TF1 checkpoints in its wheel. Its own model code needs TF1 layers; the graph is
rebuilt here from the checkpoint's .meta file instead, cut down to what inference needs (the training
ops in it no longer import into TensorFlow 2), so it runs in drumcat's own environment:

    .venv/bin/pip install --no-deps musicnn==0.1.0   # its numpy<1.17 pin is for its own code, unused here
    .venv/bin/python bench/probe_musicnn.py --dataset build/dataset [--model MTT_musicnn] [--teacher-out FILE]

The embedding of a clip: its first 3 s at 16 kHz (zero-padded, musicnn's log-mel recipe), the
mid-end's max- and mean-pooled features and the penultimate layer, 1,706 numbers.

Measured (dataset of 6,236 clips, 2 cores, 199 s to embed). On the validation kits, best C: MTT_musicnn
0.860 / 0.830 (core accuracy / macro-F1), MSD_musicnn 0.837 / 0.807 (an exploration run), against the
CNN's 0.881 / 0.858 (mean of three seeds, core loss) and aisfx's 0.917 / 0.905. Judged there, musicnn
does not beat the CNN, so it was not distilled. The test kits, read once after that decision, disagree:
0.881 / 0.854, against the CNN's 0.845 / 0.787 and aisfx's 0.850 / 0.806 (docs/model-history.md,
"A probe of `musicnn`").
`--kit-folds 5` (grouped cross-validation over the training + validation kits, in the folds of
`drumcat train --kit-folds 5`) sides with validation: 0.782 ± 0.091 at C = 0.01, against aisfx's 0.825 ±
0.084 and the CNN's 0.818 ± 0.095 (folds that hold out what the splits hold out, before the noise bursts
were spread over them; docs/model-history.md, "Cross-validation over kits").
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECONDS, RATE, HOP, N_FFT, MELS = 3.0, 16_000, 256, 512, 96  # musicnn's input recipe (its configuration.py)
FRAMES = 187  # 3 s at that hop, as musicnn's extractor counts them
MODEL = "MTT_musicnn"  # --model; the better of the two on the validation kits (above)


def checkpoint_folder(model: str) -> Path:
    spec = importlib.util.find_spec("musicnn")  # found, not imported: its extractor switches eager mode off
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("musicnn is not installed: .venv/bin/pip install --no-deps musicnn==0.1.0")
    return Path(spec.submodule_search_locations[0]) / model


def inference_session(folder: Path) -> tuple:
    """A TF1 session holding the checkpoint's inference graph: (session, input, is_training, features)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    tf.compat.v1.disable_eager_execution()
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    wanted = ["model/concat_2", "model/dense/Relu", meta.saver_def.restore_op_name]
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, wanted)
    for node in graph_def.node:  # shapes recorded by TF1 that TF2's importer rejects; it infers them again
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    session.run(meta.saver_def.restore_op_name, {meta.saver_def.filename_tensor_name: f"{folder}/"})
    tensor = graph.get_tensor_by_name
    return (session, tensor("model/Placeholder:0"), tensor("model/Placeholder_2:0"),
            [tensor("model/concat_2:0"), tensor("model/dense/Relu:0")])


def log_mel(path: Path) -> np.ndarray:
    import librosa

    y, _ = librosa.load(path, sr=RATE, duration=SECONDS)
    mel = librosa.feature.melspectrogram(y=y, sr=RATE, hop_length=HOP, n_fft=N_FFT, n_mels=MELS).T
    patch = np.zeros((FRAMES, MELS), dtype=np.float32)
    patch[:min(FRAMES, len(mel))] = np.log10(10_000 * mel[:FRAMES] + 1)
    return patch


def embedder(model: str):
    def embed(dataset: Path, rows: list[dict[str, str]]) -> np.ndarray:
        session, inputs, is_training, features = inference_session(checkpoint_folder(model))
        out = []
        for start in range(0, len(rows), 64):
            batch = np.stack([log_mel(dataset / r["path"]) for r in rows[start:start + 64]])
            pooled, penultimate = session.run(features, {inputs: batch, is_training: False})
            out.append(np.concatenate([pooled.reshape(len(batch), -1), penultimate], axis=1))
        return np.concatenate(out)
    return embed


def main() -> None:
    from bench.probe import linear_probe, probe_arguments

    parser = probe_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, choices=["MTT_musicnn", "MSD_musicnn"])
    args = parser.parse_args()
    linear_probe(f"musicnn-{args.model}", embedder(args.model), args)


if __name__ == "__main__":
    main()

"""`make model` / `drumcat train`: train the default classifier on the dataset, evaluate it on held-out
kits, calibrate it, and write `models/drumcat-v2.keras` with its card.

Splits come from the manifest (whole kits and fonts, never clips of one kit on both sides). Training
uses only the train split; validation picks the epoch and fits the temperature; test is read once, at
the end, for the card's metrics.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import platform
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.audio.features import FeatureRecipe, compute_features, from_cut, prepare_clips
from drumcat.audio.files import fit_length, resample
from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelCard, card_path_for, lite_path_for, load_bundle, save_bundle
from drumcat.model.evaluate import core_report
from drumcat.model.library_norm import with_library_statistics
from drumcat.model.metrics import (
    apply_temperature,
    classification_report,
    expected_calibration_error,
    fit_temperature,
    kit_bootstrap_interval,
)
from drumcat.model.runtime import LiteRuntime, quiet_tensorflow
from drumcat.model.train import synth_kits
from drumcat.model.train.augmentation import DECAY_SLOPES, augment, mask_spectrogram, mix_half_in_power
from drumcat.model.train.dataset import (
    DEBIAN_PACKAGES,
    clip_rate_of,
    holdout_group,
    independent_draws,
    synth_kit_clips,
)
from drumcat.model.train.kernels import kernels_in_effect, machine_description
from drumcat.staging import write_whole
from drumcat.taxonomy import CORE_CLASSES, FINE_CLASSES, MISC, canonical, core_decisions, core_membership
from drumcat.times import utc_now

RECIPE = FeatureRecipe(sample_rate=22_050, clip_seconds=1.0, feature_type="logmel", n_fft=1024,
                       hop_length=256, n_mels=64, fmin=20.0, fmax=None, top_db=80.0, peak_normalize=True,
                       start_at_onset=True,  # the dataset's clips are cut so (dataset.to_clip); files are too
                       lead_seconds=0.01)  # onsets 15 ms in, inside augment's 0-20 ms shifts (README, run 58)
RECIPES_BY_RATE = {recipe.sample_rate: recipe for recipe in (
    RECIPE,
    # The same window; a hop that keeps about as many frames a second (83 against 86); mel bands up to 16 kHz.
    # Not native_rates: at 44.1 kHz its FFT bins fall 2% apart from 32 kHz's, and that moved 1.7% of unseen
    # one-shots to another folder (run 37).
    dataclasses.replace(RECIPE, sample_rate=32_000, hop_length=384),
    # The commonest archive rate, so most files need no resampling (the 32 kHz step made `infer` 16% slower:
    # run 35): the same FFT size and frame count as at 22.05 kHz, mel bands up to 16 kHz as at 32 kHz.
    dataclasses.replace(RECIPE, sample_rate=44_100, hop_length=512, fmax=16_000.0),
)}
"""The feature recipe for each rate a dataset can be built at (dataset.CLIP_RATES): features follow the
clips, since a model cannot hear above what its clips hold."""


NAMED_RECIPES = {
    # A 30 ms window and a 10 ms hop are whole numbers of samples at 32, 44.1 and 48 kHz (960/320, 1,323/441,
    # 1,440/480), so files at those rates share one FFT grid (bins 33.3 Hz apart) and need no resampling: the
    # 32 kHz recipe's 1,024-sample window is 1,411.2 samples at 44.1 kHz, and the nearest fast FFT moved near
    # ties to other folders (run 37). 101 frames. Adopted on the kit folds (run 39); trained in full, 12%
    # slower at `infer` than the 22.05 kHz recipe (run 40): its 1,323-point FFT at 44.1 kHz is a slow size.
    "shared-grid": dataclasses.replace(RECIPE, sample_rate=32_000, n_fft=960, hop_length=320, native_rates=True),
    # The same grid with a 20 ms window (640, 882, 960 samples; bins 50 Hz apart): at 44.1 kHz its features
    # cost 0.40 ms a file against 0.60-0.63 for the 30 ms grid, less than the 22.05 kHz recipe's (run 41). On
    # the kit folds, 0.0042 / 0.0051 below the 30 ms grid in core accuracy / macro-F1, the bar being 0.005:
    # not adopted (run 42).
    "shared-grid-20ms": dataclasses.replace(RECIPE, sample_rate=32_000, n_fft=640, hop_length=320,
                                            native_rates=True),
    # The shipped recipe's mel power through per-channel energy normalization (features.pcen_batch): each
    # band against its own recent past, so a drum machine's or a console's gain per band drops out and the
    # attack and decay shapes stay. A probe on the kit folds (run 64).
    "pcen": dataclasses.replace(RECIPE, feature_type="pcen"),
}
"""Recipes `train --recipe NAME` uses instead of the dataset rate's own (a dataset at the recipe's rate)."""


def dataset_digest(dataset: Path) -> str:
    """sha256 of the manifest and of every clip it lists, in its order: a run repeats bit for bit only on
    the same dataset, and this tells a reproduction on another machine whether it has it."""
    manifest = (dataset / "manifest.csv").read_bytes()
    digest = hashlib.sha256(manifest)
    for row in csv.DictReader(io.StringIO(manifest.decode("utf-8"))):
        digest.update((dataset / row["path"]).read_bytes())
    return digest.hexdigest()


def network_digest(model: Any) -> str:
    """sha256 of a Keras model's weight arrays, in their order: what a repeated run must reproduce. The
    .keras file's own sha256 (the card's weights_sha256) cannot repeat: Keras writes the time of the save
    and Python object ids into the archive (run 60, README: "Repeating a run on another machine")."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def recipe_for(dataset: Path, name: str | None = None) -> FeatureRecipe:
    """The feature recipe for a built dataset's clip rate, or the named one (NAMED_RECIPES) at that rate."""
    rate = clip_rate_of(dataset)
    if name is not None:
        if name not in NAMED_RECIPES:
            raise DrumcatError(f"--recipe {name}: no such recipe; known: {', '.join(NAMED_RECIPES)}")
        if NAMED_RECIPES[name].sample_rate != rate:
            raise DrumcatError(f"--recipe {name} is at {NAMED_RECIPES[name].sample_rate} Hz and {dataset} holds "
                             f"clips at {rate} Hz: build a dataset at that rate (`python -m "
                             "drumcat.model.train.dataset --rate`)")
        return NAMED_RECIPES[name]
    if rate not in RECIPES_BY_RATE:
        raise DrumcatError(f"{dataset} holds clips at {rate} Hz; training knows {', '.join(map(str, RECIPES_BY_RATE))}"
                         f" Hz: rebuild it with `python -m drumcat.model.train.dataset --rate`")
    return RECIPES_BY_RATE[rate]


@dataclass
class Split:
    clips: list[np.ndarray]
    labels: np.ndarray  # class indices
    kits: list[str]
    sources: list[str]
    paths: list[str]  # as the manifest names them


def load_split(dataset: Path, split: str, classes: list[str], rate: int = RECIPE.sample_rate) -> Split:
    """A split's clips, resampled to `rate` (the recipe's) where a file is at another."""
    import soundfile as sf

    index = {name: i for i, name in enumerate(classes)}
    clips, labels, kits, sources, paths = [], [], [], [], []
    with (dataset / "manifest.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            audio, file_rate = sf.read(str(dataset / row["path"]), dtype="float32")
            clips.append(resample(audio, file_rate, rate))
            labels.append(index[row["label"]])
            kits.append(row["kit"])
            sources.append(row["source"])
            paths.append(row["path"])
    return Split(clips, np.asarray(labels), kits, sources, paths)


def subset(split: Split, rows: np.ndarray) -> Split:
    return Split([split.clips[i] for i in rows], split.labels[rows], [split.kits[i] for i in rows],
                 [split.sources[i] for i in rows], [split.paths[i] for i in rows])


def _holdout_key(kit: str, row: int) -> str:
    """What a row is held out (or kept) together with: its kit's `holdout_group`, or the row alone for the
    `independent_draws`, which spread like kits of one clip."""
    return f"{kit}#{row}" if independent_draws(kit) else holdout_group(kit)


def kit_folds(kit_of_row: list[str], folds: int) -> list[np.ndarray]:
    """The rows of each of `folds` held-out folds, every kit's clips (with its `holdout_group`) in exactly
    one, except `independent_draws`, spread like kits of one clip: groups taken largest first, each into
    the fold with the fewest clips so far (deterministic, and folds of even size). The CNN's
    cross-validation and the probes' (bench/probe.py) use the same folds."""
    kits: dict[str, list[int]] = {}
    for row, kit in enumerate(kit_of_row):
        kits.setdefault(_holdout_key(kit, row), []).append(row)
    held: list[list[int]] = [[] for _ in range(folds)]
    for _, members in sorted(kits.items(), key=lambda item: (-len(item[1]), item[0])):
        min(held, key=len).extend(members)
    return [np.array(sorted(rows), dtype=int) for rows in held]


def share_of_kits(rows: np.ndarray, kit_of_row: list[str], share: float) -> np.ndarray:
    """`rows` cut to about `share` of their clips by whole kits (with their `holdout_group`), for a learning
    curve: how a fold's figures move with the number of kits a model learns from. Kits are taken in one fixed
    shuffled order until the share of clips is reached, so a smaller share's kits are among a larger one's
    and every seed sees the same kits; `independent_draws` count as kits of one clip, as in `kit_folds`."""
    if share >= 1.0:
        return rows
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(_holdout_key(kit_of_row[row], int(row)), []).append(int(row))
    order = sorted(groups, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    kept: list[int] = []
    for name in order:
        if len(kept) >= share * len(rows):
            break
        kept.extend(groups[name])
    return np.array(sorted(kept), dtype=int)


def folds_of_earlier_run(earlier: Path, kit_of_row: list[str]) -> list[np.ndarray]:
    """The rows of each fold as an earlier kit-fold run held them out (its `--fold-probabilities` file): every
    kit in the fold it was in then, and `independent_draws` clips spread as they were, in order. `kit_folds`
    places kits by size, so a dataset whose kits differ by a few clips (another clip rate, a relabeling)
    would reshuffle half of them; with this, two datasets are compared on the same held-out kits."""
    with np.load(earlier) as run:
        kits, numbers = [str(k) for k in run["kits"]], [int(f) - 1 for f in run["fold"]]
    fold_of_group: dict[str, int] = {}
    draws: dict[str, list[int]] = {}
    for kit, number in zip(kits, numbers, strict=True):
        if independent_draws(kit):
            draws.setdefault(kit, []).append(number)
        else:
            fold_of_group[holdout_group(kit)] = number
    held: list[list[int]] = [[] for _ in range(max(numbers) + 1)]
    drawn: Counter = Counter()
    for row, kit in enumerate(kit_of_row):
        if independent_draws(kit) and kit in draws:
            held[draws[kit][drawn[kit] % len(draws[kit])]].append(row)
            drawn[kit] += 1
        elif holdout_group(kit) in fold_of_group:
            held[fold_of_group[holdout_group(kit)]].append(row)
        else:
            raise DrumcatError(f"{earlier} held out no clip of kit {kit!r}: its folds cannot be reused here")
    return [np.array(rows, dtype=int) for rows in held]


def joined(first: Split, second: Split) -> Split:
    return Split([*first.clips, *second.clips], np.concatenate([first.labels, second.labels]),
                 [*first.kits, *second.kits], [*first.sources, *second.sources], [*first.paths, *second.paths])


# --- training set ------------------------------------------------------------------------------------


@functools.cache
def synthesized_training_kits(count: int, rate: int = RECIPE.sample_rate) -> Split:
    """The first `count` of the synthesized training kits (synth_kits) as a split, which `Setup.fitting_split`
    adds to every fit. Cached: a kit-fold run fits five times on the same kits."""
    if not 0 <= count <= synth_kits.TRAIN_KITS:
        raise ValueError(f"{count} synthesized training kits: there are {synth_kits.TRAIN_KITS}")
    index = {name: i for i, name in enumerate(FINE_CLASSES)}
    clips = list(synth_kit_clips(range(count), rate))
    return Split([c.samples for c in clips],
                 np.array([index[c.label] for c in clips], dtype=int), [c.kit for c in clips],
                 [c.source for c in clips], [c.origin for c in clips])


def features_of(clips: list[np.ndarray], recipe: FeatureRecipe = RECIPE) -> np.ndarray:
    batch = prepare_clips([fit_length(c, recipe.total_samples) for c in clips], recipe)
    return compute_features(batch, recipe)


def features_as_read(clips: list[np.ndarray], recipe: FeatureRecipe = RECIPE) -> np.ndarray:
    """Features of clips cut at their onset as `infer` and `evaluate` read such a file (it holds nothing
    before its cut, so the recipe's lead is zeros). What the test figures are measured on; selection on
    the validation kits keeps `features_of`, so that adding the lead changed no network and no temperature."""
    return features_of([from_cut(clip, 0, recipe.sample_rate, recipe) for clip in clips], recipe)


def augmented_training_set(
    split: Split, copies: int, seed: int, num_classes: int, recipe: FeatureRecipe = RECIPE,
    clip_targets: np.ndarray | None = None, decay_reshape: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, soft targets and primary labels: the clips, `copies` augmented variations of each, and
    mixup of half the variations with a random partner (mixed as power, the way two sounds add).
    `clip_targets` (one row per clip) replaces the one-hot targets, for each copy of the clip;
    `decay_reshape` is `augment`'s."""
    rng = np.random.default_rng(seed)
    features = [features_of(split.clips, recipe)]
    for _ in range(copies):
        augmented = features_of([augment(c, rng, recipe.sample_rate, decay_reshape) for c in split.clips], recipe)
        features.append(np.stack([mask_spectrogram(f, rng) for f in augmented]))
    x = np.concatenate(features)
    labels = np.tile(split.labels, copies + 1)
    if clip_targets is None:
        targets = np.eye(num_classes, dtype=np.float32)[labels]
    else:
        targets = np.tile(clip_targets.astype(np.float32), (copies + 1, 1))
    mix_half_in_power(x, targets, len(split.clips), rng, in_decibels=recipe.feature_type == "logmel")
    return x, targets, labels


# --- model -------------------------------------------------------------------------------------------


WIDTHS = (24, 48, 96, 128)  # filters of the four convolutions
STUDENT_WIDTHS = (16, 32, 64, 96)  # half the multiply-adds: what a student distilled from the default gets
CORE_WEIGHT = 1.0  # the core-class cross-entropy beside the fine one (`training_loss`; README, run 22)
INPUT_VIEWS = ("plain", "band-centered")
"""What each network sees of the log-mel input (`_input_view`); the first is the shipped recipe's."""
POOLINGS = ("global", "time")
"""How a network pools its last feature maps (`_pooled`); the first is the shipped recipe's. On the kit folds
"time" tied with it (run 43, docs/model-history.md): not adopted."""


def build_model(num_classes: int, widths: tuple[int, ...] = WIDTHS, recipe: FeatureRecipe = RECIPE,
                members: int = 1, pooling: str = POOLINGS[0], input_view: str = INPUT_VIEWS[0]) -> Any:
    """A small CNN over log-mel patches (~0.2 M parameters, well under 5 MB). The first convolution
    strides by 2: at full resolution its 24 feature maps cost more memory traffic than all later layers,
    and striding makes the forward pass 3x cheaper on a CPU with the same accuracy (README, runs 6-7).

    With `members` > 1, that many such networks side by side on the same input (`ensemble_of` fills
    them): their embeddings are concatenated into one, named `embedding`, and a single Dense softmax
    reads it. Its weights are the members' output layers stacked and divided by `members`, so its logits
    are the mean of theirs. The ensemble is then still "an embedding, then a Dense softmax", the shape
    `drumcat adapt` and `similar` rely on."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=recipe.input_shape, name="features")
    seen = _input_view(inputs, input_view)
    if members == 1:
        x = layers.Dropout(0.4, name="dropout")(_member_embedding(seen, widths, prefix="", pooling=pooling))
    else:
        x = layers.Concatenate(name="embedding")([_member_embedding(seen, widths, member_prefix(k), pooling)
                                                  for k in range(members)])
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="drumcat_cnn" if members == 1 else f"drumcat_ensemble{members}")


def _input_view(inputs: Any, view: str) -> Any:
    """"plain": the log-mel patch as it is. "band-centered": a second channel beside it, each mel band minus
    its mean over the clip's frames. A recording chain's coloring (an EQ, a microphone, a console) adds a
    constant to each band of a log-mel patch, so it drops out of that channel while the decay of each band
    stays: what sets one kit's cymbal apart from another's should be left. Standard layers only, so the
    model still loads in safe mode and exports to LiteRT."""
    from keras import layers

    if view == "plain":
        return inputs
    band_means = layers.AveragePooling2D((1, inputs.shape[2]), name="band_means")(inputs)
    centered = layers.Subtract(name="band_centered")([inputs, band_means])
    return layers.Concatenate(name="input_views")([inputs, centered])


def _member_embedding(inputs: Any, widths: tuple[int, ...], prefix: str, pooling: str) -> Any:
    """One network from its input to its 128-wide embedding; `prefix` keeps the members' layer names apart."""
    from keras import layers

    x = layers.BatchNormalization(name=f"{prefix}input_norm")(inputs)
    for index, width in enumerate(widths[:3]):
        x = layers.Conv2D(width, 3, strides=2 if index == 0 else 1, padding="same", use_bias=False,
                          name=f"{prefix}conv{index}")(x)
        x = layers.BatchNormalization(name=f"{prefix}bn{index}")(x)
        x = layers.Activation("relu", name=f"{prefix}relu{index}")(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}pool{index}")(x)
    x = layers.Conv2D(widths[3], 3, padding="same", use_bias=False, name=f"{prefix}conv3")(x)
    x = layers.BatchNormalization(name=f"{prefix}bn3")(x)
    x = layers.Activation("relu", name=f"{prefix}relu3")(x)
    return layers.Dense(128, activation="relu", name=f"{prefix}embedding")(_pooled(x, prefix, pooling))


def _pooled(x: Any, prefix: str, pooling: str) -> Any:
    """The last feature maps (bands, frames, channels) as one vector: their mean and maximum over
    "global": bands and frames, so a pattern counts the same wherever it sits;
    "time": frames only, one mean and maximum per band row (4 of them for 64 mel bands), so the Dense after it
    knows where in the spectrum a pattern sits, as a kick told from a low tom by pitch needs."""
    from keras import layers

    if pooling == "global":
        return layers.Concatenate(name=f"{prefix}pool")([layers.GlobalAveragePooling2D(name=f"{prefix}avg")(x),
                                                         layers.GlobalMaxPooling2D(name=f"{prefix}max")(x)])
    over_frames = (1, x.shape[2])
    return layers.Flatten(name=f"{prefix}pool")(layers.Concatenate(name=f"{prefix}pool_rows")(
        [layers.AveragePooling2D(over_frames, name=f"{prefix}avg")(x),
         layers.MaxPooling2D(over_frames, name=f"{prefix}max")(x)]))


def member_prefix(index: int) -> str:
    return f"member{index}_"


MODEL_VERSION = "3.7.2"
"""The version `train` writes into the card: 3 since the card gives the LiteRT export's own test figures and
a model may be an ensemble (2.2: the core-class loss; 3.1: soundfont keys labeled per kit, from each font's
own instrument names; 3.2: files whose own name names another core class skipped; 3.3: a recording two
kits share kept once, in the held-out kit; 3.5: a file whose name says it is played backwards labeled
Reverse; 3.5.1: files cut at their onset at inference, as the clips were; 3.5.2: the clip starts 10 ms
before that cut, the test figures measured so; 3.6: trained with portable kernels, so that another x86
machine of the same kind repeats the run (run 61: not one of another kind), and the card records them with
the dataset's sha256 and the Python packages' versions; 3.7: the collections read wherever a file's own name
says its class: hand percussion in the machines' perc folders and 22 more Dirt-Samples kit folders; 3.7.1:
two Dirt-Samples labels mended and shared recordings found with drumcat's own duration slack; 3.7.2: run
67's label audit mended (labels.FILE_EXCEPTIONS, TimGM6mb's key 51); README, "The default model")."""

MEMBER_SEED_STEP = 1000
"""Member k of the ensemble trained for seed s is trained with seed s + k x this: member 0 is the single
network seed s gives, and no two members of seeds 1..999 share a seed."""


def member_seeds(seed: int, members: int) -> list[int]:
    return [seed + MEMBER_SEED_STEP * k for k in range(members)]


def ensemble_of(models: list[Any], num_classes: int, widths: tuple[int, ...] = WIDTHS,
                recipe: FeatureRecipe = RECIPE, pooling: str = POOLINGS[0], input_view: str = INPUT_VIEWS[0]) -> Any:
    """A fresh, uncompiled model holding trained networks' weights (`build_model`): one network's copy
    (nothing of its optimizer kept), or the ensemble of several whose logits are averaged."""
    ensemble = build_model(num_classes, widths, recipe, members=len(models), pooling=pooling, input_view=input_view)
    if len(models) == 1:
        ensemble.set_weights(models[0].get_weights())
        return ensemble
    for index, model in enumerate(models):
        for layer in model.layers:
            if layer.weights and layer.name != "probabilities":
                ensemble.get_layer(member_prefix(index) + layer.name).set_weights(layer.get_weights())
    heads = [model.get_layer("probabilities").get_weights() for model in models]
    ensemble.get_layer("probabilities").set_weights([np.concatenate([kernel for kernel, _ in heads]) / len(models),
                                                     np.mean([bias for _, bias in heads], axis=0)])
    return ensemble


def training_loss(core_weight: float) -> Any:
    """Cross-entropy over the fine classes (label smoothing 0.05), plus `core_weight` x cross-entropy of the
    probabilities summed into the core classes: the core label is what the views file a sound under, so a
    kick taken for another kick costs less than a kick taken for a tom."""
    import keras

    fine = keras.losses.CategoricalCrossentropy(label_smoothing=0.05)
    if not core_weight:
        return fine
    membership = keras.ops.convert_to_tensor(core_membership(list(FINE_CLASSES)))

    def fine_and_core(y_true: Any, y_pred: Any) -> Any:
        core = keras.losses.categorical_crossentropy(keras.ops.matmul(y_true, membership),
                                                     keras.ops.matmul(y_pred, membership))
        return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=0.05) + core_weight * core

    return fine_and_core


def compiled_model(num_classes: int, widths: tuple[int, ...] = WIDTHS, recipe: FeatureRecipe = RECIPE,
                   core_weight: float = CORE_WEIGHT, ema: float = 0.0, pooling: str = POOLINGS[0],
                   input_view: str = INPUT_VIEWS[0]) -> Any:
    """With `ema`, the optimizer also keeps an exponential moving average of the weights (that momentum
    per step), which the model is validated with and ends with (`ema_callbacks`)."""
    import keras

    model = build_model(num_classes, widths, recipe, pooling=pooling, input_view=input_view)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-3, use_ema=ema > 0,
                                                   ema_momentum=ema if ema > 0 else 0.99),
                  loss=training_loss(core_weight),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model


def balanced(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-sample weights from `class_weights`."""
    weights = class_weights(labels, num_classes)
    return np.array([weights[c] for c in labels], dtype=np.float32)


def kit_weights(kits: list[str]) -> np.ndarray:
    """Per-clip weights that let a kit count by the square root of its size, not its size (mean 1, clipped
    to 0.25..4): FluidR3 alone is 1,630 of the 4,403 training clips, so without them one font's timbre is
    most of what the model learns."""
    groups = [holdout_group(kit) for kit in kits]
    sizes = Counter(groups)
    weights = np.array([sizes[g] ** -0.5 for g in groups])
    return np.clip(weights / weights.mean(), 0.25, 4.0).astype(np.float32)


@dataclass
class Teacher:
    """Distillation: a trained model whose softened probabilities are blended into the targets, so a
    smaller student learns how the teacher ranks every class, not only the right one."""

    model: Any
    source: str
    """Where the teacher came from, for the student's card."""
    weight: float = 0.5
    temperature: float = 2.0
    sample_rate: int = RECIPE.sample_rate
    """The rate of the features it was trained on: a student's must be the same."""

    @classmethod
    def load(cls, path: Path) -> Teacher:
        bundle = load_bundle(path, lite=False)
        return cls(bundle.keras_model, f"{path} (sha256 {bundle.card.weights_sha256[:12]})",
                   sample_rate=bundle.card.features.sample_rate)

    def describe(self) -> dict[str, str]:
        return {"teacher": self.source,
                "targets": f"{1 - self.weight:g} x the targets above + {self.weight:g} x the teacher's "
                           f"probabilities softened at temperature {self.temperature:g}"}

    def soft_targets(self, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        probabilities = self.model.predict(x, batch_size=256, verbose=0).astype(np.float64)
        softened = apply_temperature(probabilities, self.temperature).astype(np.float32)
        return (1 - self.weight) * targets + self.weight * softened


@dataclass
class TeacherTargets:
    """Distillation from probabilities computed elsewhere (bench/probe_aisfx.py --teacher-out: a probe of
    pretrained embeddings that drumcat itself cannot run). Each training clip's probabilities come from a
    classifier that never saw its kit, once fitted within the training kits ("selection", for the run
    that picks the epoch on validation) and once within training + validation ("refit"); they are
    blended with the one-hot label for every augmented copy of the clip."""

    by_phase: dict[str, dict[str, np.ndarray]]
    """phase -> manifest path -> probabilities over the fine classes."""
    source: str
    weight: float = 0.5

    @classmethod
    def load(cls, path: Path, classes: list[str]) -> TeacherTargets:
        data = np.load(path)
        if list(data["classes"]) != classes:
            raise ValueError(f"{path}: its classes are not the model's fine classes")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        paths = data["paths"].tolist()
        # A row of zeros is a clip the phase's classifier gave nothing for (a held-out kit's): not known.
        return cls({phase: {p: row for p, row in zip(paths, data[phase], strict=True) if row.any()}
                    for phase in ("selection", "refit")}, f"{path} (sha256 {digest}): {data['source']}")

    def for_split(self, split: Split, phase: str, num_classes: int) -> np.ndarray:
        """Per clip: the blend, or the one-hot label for a clip the teacher has no probabilities for
        (clips added to the dataset after the teacher was made, such as the synthesized kits)."""
        one_hot = np.eye(num_classes, dtype=np.float32)[split.labels]
        known = self.by_phase[phase]
        return np.stack([(1 - self.weight) * row + self.weight * known[path] if path in known else row
                         for row, path in zip(one_hot, split.paths, strict=True)])

    def describe(self) -> dict[str, str]:
        return {"teacher": self.source,
                "targets": f"{1 - self.weight:g} x the label + {self.weight:g} x the teacher's out-of-kit "
                           "probabilities, for every copy of a clip"}


@dataclass(frozen=True)
class Setup:
    """What a training run is made of, besides the data and the seed."""

    recipe: FeatureRecipe = RECIPE
    widths: tuple[int, ...] = WIDTHS
    copies: int = 3
    teacher: Teacher | None = None
    teacher_targets: TeacherTargets | None = None
    core_weight: float = CORE_WEIGHT
    """Weight of the core-class cross-entropy beside the fine one (`training_loss`)."""
    kit_balance: bool = False
    """Weigh clips by `kit_weights` as well as by class."""
    ema: float = 0.0
    """Momentum of a moving average of the weights, validated and kept instead of the last ones (0: none)."""
    members: int = 1
    """Networks trained per seed (`member_seeds`) and shipped as one model that averages them (`ensemble_of`)."""
    decay_reshape: float = 0.0
    """Share of the augmented copies whose decay is reshaped (`reshape_decay`; 0: none)."""
    synth_train_kits: int = 0
    """Synthesized kits added to what every model fits on (`synthesized_training_kits`); never validated or
    tested on, so a kit-fold comparison holds out exactly the same real clips with and without them."""
    pooling: str = POOLINGS[0]
    """How each network pools its last feature maps (`_pooled`)."""
    input_view: str = INPUT_VIEWS[0]
    """What each network sees of its input (`_input_view`)."""

    @classmethod
    def of(cls, *, copies: int, tail_seconds: float, teacher_path: Path | None = None,
           teacher_targets_path: Path | None = None, core_weight: float = CORE_WEIGHT,
           kit_balance: bool = False, ema: float = 0.0, members: int = 1, decay_reshape: float = 0.0,
           synth_train_kits: int = 0, recipe: FeatureRecipe = RECIPE, pooling: str = POOLINGS[0],
           input_view: str = INPUT_VIEWS[0], widths: tuple[int, ...] | None = None) -> Setup:
        """The setup `train`'s options describe, on features of `recipe` (the dataset's: `recipe_for`): a
        model teacher means the half-size student widths, unless `widths` says otherwise."""
        teacher = Teacher.load(teacher_path) if teacher_path else None
        if teacher and teacher.sample_rate != recipe.sample_rate:
            raise DrumcatError(f"teacher {teacher_path} hears {teacher.sample_rate} Hz and the dataset is at "
                             f"{recipe.sample_rate} Hz: use a teacher trained at the dataset's rate")
        return cls(recipe=dataclasses.replace(recipe, tail_seconds=tail_seconds),
                   widths=widths or (STUDENT_WIDTHS if teacher else WIDTHS), copies=copies, teacher=teacher,
                   teacher_targets=(TeacherTargets.load(teacher_targets_path, list(FINE_CLASSES))
                                    if teacher_targets_path else None), core_weight=core_weight,
                   kit_balance=kit_balance, ema=ema, members=members, decay_reshape=decay_reshape,
                   synth_train_kits=synth_train_kits, pooling=pooling, input_view=input_view)

    def fitting_split(self, split: Split) -> Split:
        """What a model fits on, given the kits it may learn from: those, plus the synthesized training kits."""
        if not self.synth_train_kits:
            return split
        return joined(split, synthesized_training_kits(self.synth_train_kits, self.recipe.sample_rate))

    def training_set(self, split: Split, seed: int, num_classes: int, phase: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clip_targets = self.teacher_targets.for_split(split, phase, num_classes) if self.teacher_targets else None
        x, targets, labels = augmented_training_set(split, self.copies, seed, num_classes, self.recipe, clip_targets,
                                                    self.decay_reshape)
        if self.teacher:
            targets = self.teacher.soft_targets(x, targets)
        return x, targets, labels

    def model(self, num_classes: int) -> Any:
        return compiled_model(num_classes, self.widths, self.recipe, self.core_weight, self.ema, self.pooling,
                              self.input_view)

    def ensemble(self, models: list[Any], num_classes: int) -> Any:
        return ensemble_of(models, num_classes, self.widths, self.recipe, self.pooling, self.input_view)

    def ema_callbacks(self) -> list[Any]:
        """With `ema`: validate with the averaged weights, and let early stopping keep those (it must come
        after this callback)."""
        import keras

        return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if self.ema else []

    def sample_weights(self, split: Split, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Each row of `training_set(split)`'s weight: its class's, times its kit's with `kit_balance`."""
        weights = balanced(labels, num_classes)
        if self.kit_balance:  # training_set stacks the clips, then each augmented copy, in split order
            weights *= np.tile(kit_weights(split.kits), len(labels) // len(split.kits))
        return weights


def refit_on_train_and_validation(
    train_split: Split, val_split: Split, seed: int, num_classes: int, learning_rates: list[float], setup: Setup,
) -> Any:
    """A fresh model on the training and validation kits together, for as many epochs as validation chose
    and with the same learning rates epoch by epoch. Held-out kits reward kit diversity above all, and the
    validation kits are five more; the test kits stay unseen."""
    import keras

    both = setup.fitting_split(joined(train_split, val_split))
    x, targets, labels = setup.training_set(both, seed, num_classes, "refit")
    model = setup.model(num_classes)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch: float(learning_rates[epoch]))
    model.fit(x, targets, sample_weight=setup.sample_weights(both, labels, num_classes), epochs=len(learning_rates),
              batch_size=64, callbacks=[schedule], verbose=2)
    return model


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse-square-root frequency, so thin classes count without drowning the rest."""
    counts = Counter(labels.tolist())
    median = float(np.median(list(counts.values())))
    return {c: float(np.clip(np.sqrt(median / counts[c]), 0.3, 4.0)) if c in counts else 1.0
            for c in range(num_classes)}


# --- evaluation --------------------------------------------------------------------------------------


def evaluate_split(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    truth = [classes[i] for i in labels]
    fine = classification_report(truth, predicted, probabilities.max(axis=1), classes)
    return {"fine": fine, "core": core_report([canonical(t) for t in truth], probabilities, classes)}


def per_source(probabilities: np.ndarray, split: Split, classes: list[str]) -> dict[str, Any]:
    """Core accuracy and macro-F1 on each source's test kits, and their unweighted mean, so one large
    source cannot hide a weak one."""
    table = {}
    for source in sorted(set(split.sources)):
        rows = [i for i, s in enumerate(split.sources) if s == source]
        core = evaluate_split(probabilities[rows], split.labels[rows], classes)["core"]
        table[source] = {"clips": len(rows), "accuracy": core["accuracy"], "macro_f1": core["macro_f1"]}
    return {"sources": table,
            "mean_over_sources": {key: round(float(np.mean([t[key] for t in table.values()])), 4)
                                  for key in ("accuracy", "macro_f1")}}


HEADLINE = (("core", "accuracy"), ("core", "macro_f1"), ("fine", "accuracy"), ("fine", "macro_f1"),
            ("fine", "ece"), ("core", "ece"))


def seed_summary(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (min, max, standard deviation) of the headline test figures over seeds."""
    summary: dict[str, Any] = {"seeds": sorted(runs)}
    for level, key in HEADLINE:
        values = np.array([runs[seed][level][key] for seed in sorted(runs)])
        summary[f"{level}_{key}"] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                                     "min": round(float(values.min()), 4), "max": round(float(values.max()), 4),
                                     "per_seed": [round(float(v), 4) for v in values]}
    # Over the runs holding the source: kit folds hold out different sources (seeds all hold the same).
    held = [runs[run]["per_source"]["sources"] for run in sorted(runs)]
    summary["per_source_core_accuracy"] = {
        source: round(float(np.mean([each[source]["accuracy"] for each in held if source in each])), 4)
        for source in sorted(set().union(*held))}
    return summary


def package_versions() -> dict[str, str]:
    versions = {}
    for package in DEBIAN_PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        versions[package] = result.stdout.strip() or "not installed"
    return versions


TRAINING_PYTHON_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scipy", "soxr", "soundfile", "librosa",
                            "ai-edge-litert", "threadpoolctl")
"""What computes a run's features and networks: a repeat needs the same versions (`python_package_versions`)."""


def python_package_versions() -> dict[str, str]:
    """The installed versions of TRAINING_PYTHON_PACKAGES (those installed), and Python's own."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in TRAINING_PYTHON_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


@dataclass
class SeedRun:
    """One training run: the model to ship if this is the shipped seed, and how it did."""

    model: Any
    temperature: float
    test: dict[str, Any]
    validation: dict[str, Any]
    test_before_refit: dict[str, Any] | None
    epochs_run: list[int]  # per member
    best_epochs: list[int]  # per member
    test_core_predictions: list[str]  # per test clip, for `kit_interval_on_test`


@dataclass
class Selection:
    """The run on the training kits that validation stops: the epoch count, learning rates and temperature."""

    model: Any
    validation_probabilities: np.ndarray  # before calibration
    temperature: float
    epochs_run: int
    best_epochs: int
    learning_rates: list[float]  # per epoch, up to the best one


def select_on_validation(
    seed: int, train_split: Split, val_split: Split, x_val: np.ndarray, classes: list[str], *, epochs: int,
    setup: Setup,
) -> Selection:
    """Train on the training kits until validation loss stops improving; fit the temperature on validation.
    `train` and `compare_on_validation` both run exactly this, so a candidate compared on validation is
    the model `train` would select."""
    import keras

    keras.utils.set_random_seed(seed)
    train_split = setup.fitting_split(train_split)
    x_train, t_train, y_train = setup.training_set(train_split, seed, len(classes), "selection")
    t_val = np.eye(len(classes), dtype=np.float32)[val_split.labels]
    print(f"seed {seed}: train {len(x_train)} (with {setup.copies} augmented copies), validation {len(x_val)}")
    model = setup.model(len(classes))
    callbacks = [
        *setup.ema_callbacks(),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3),
    ]
    history = model.fit(x_train, t_train, sample_weight=setup.sample_weights(train_split, y_train, len(classes)),
                        validation_data=(x_val, t_val), epochs=epochs, batch_size=64, callbacks=callbacks, verbose=2)
    del x_train, t_train
    val_probs = model.predict(x_val, batch_size=256, verbose=0)
    best_epochs = int(np.argmin(history.history["val_loss"])) + 1
    return Selection(model, val_probs, fit_temperature(val_probs, val_split.labels), len(history.history["loss"]),
                     best_epochs, history.history["learning_rate"][:best_epochs])


def fit_seed(
    seed: int, train_split: Split, val_split: Split, test_split: Split, x_val: np.ndarray, x_test: np.ndarray,
    classes: list[str], *, epochs: int, refit: bool, setup: Setup,
) -> SeedRun:
    """Select an epoch count per member on the validation kits, fit the temperature of the members'
    average there, optionally refit each member, measure on test."""
    seeds = member_seeds(seed, setup.members)
    chosen = [select_on_validation(s, train_split, val_split, x_val, classes, epochs=epochs, setup=setup)
              for s in seeds]
    selection = setup.ensemble([c.model for c in chosen], len(classes))
    val_probs = (chosen[0].validation_probabilities if len(chosen) == 1
                 else selection.predict(x_val, batch_size=256, verbose=0))
    y_val = val_split.labels
    temperature = fit_temperature(val_probs, y_val)
    model, before_refit = selection, None
    if refit:
        model = setup.ensemble([refit_on_train_and_validation(train_split, val_split, s, len(classes),
                                                              c.learning_rates, setup)
                                for s, c in zip(seeds, chosen, strict=True)], len(classes))
        selection_test = evaluate_split(apply_temperature(selection.predict(x_test, batch_size=256, verbose=0),
                                                          temperature), test_split.labels, classes)
        before_refit = {level: {k: selection_test[level][k] for k in ("accuracy", "macro_f1", "ece")}
                        for level in ("fine", "core")}
    test, core_predictions = test_figures(model, temperature, x_test, test_split, classes)
    validation = evaluate_split(apply_temperature(val_probs, temperature), y_val, classes)
    return SeedRun(model, temperature, test, validation, before_refit, [c.epochs_run for c in chosen],
                   [c.best_epochs for c in chosen], core_predictions)


def test_figures(model: Any, temperature: float, x_test: np.ndarray, test_split: Split,
                 classes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A model's figures on the test kits (fine, core, per source; calibration before and after its
    temperature) and its core decision per clip."""
    test_probs = model.predict(x_test, batch_size=256, verbose=0)
    calibrated = apply_temperature(test_probs, temperature)
    test = evaluate_split(calibrated, test_split.labels, classes)
    test["fine"]["ece_before_calibration"] = expected_calibration_error(
        test_probs.max(axis=1), test_probs.argmax(axis=1) == test_split.labels)
    test["per_source"] = per_source(calibrated, test_split, classes)
    return test, core_decisions(calibrated, classes).labels


def kit_interval_on_test(test_split: Split, core_predictions: list[list[str]], classes: list[str]) -> dict[str, Any]:
    """The 95% interval of the runs' mean core figures (each run's core decision per test clip) over draws
    of the test kits (`kit_bootstrap_interval`): with some 25 test kits, which kits were drawn moves a
    figure more than the seed does."""
    truth = [canonical(classes[i]) for i in test_split.labels]
    return kit_bootstrap_interval(truth, core_predictions, [holdout_group(kit) for kit in test_split.kits],
                                  [*CORE_CLASSES, MISC])


def compare_on_validation(dataset: Path, setup: Setup, *, epochs: int = 30, seeds: tuple[int, ...] = (1,)
                          ) -> dict[str, Any]:
    """A candidate's figures on the validation kits only (`select_on_validation`, as `train` runs it; no
    refit), for choosing among recipes without reading the test kits."""
    quiet_tensorflow()
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    classes = list(FINE_CLASSES)
    rate = setup.recipe.sample_rate
    train_split = load_split(dataset, "train", classes, rate)
    val_split = load_split(dataset, "validation", classes, rate)
    x_val = features_of(val_split.clips, setup.recipe)
    real = [i for i, source in enumerate(val_split.sources) if source != synth_kits.SOURCE]
    runs = {}
    for seed in seeds:
        chosen = select_on_validation(seed, train_split, val_split, x_val, classes, epochs=epochs, setup=setup)
        probabilities = apply_temperature(chosen.validation_probabilities, chosen.temperature)
        report = evaluate_split(probabilities, val_split.labels, classes)
        runs[seed] = {**report, "per_source": per_source(probabilities, val_split, classes)}
        core = evaluate_split(probabilities[real], val_split.labels[real], classes)["core"]
        print(f"seed {seed}, validation kits other than {synth_kits.SOURCE}: core accuracy {core['accuracy']:.4f}, "
              f"macro-F1 {core['macro_f1']:.4f}")
    return seed_summary(runs)


def compare_on_kit_folds(dataset: Path, setup: Setup, *, folds: int, epochs: int = 30, seed: int = 1,
                         probabilities_out: Path | None = None, like: Path | None = None,
                         library_norm: bool = False, share: float = 1.0) -> dict[str, Any]:
    """A candidate's figures by grouped cross-validation over the training + validation kits: each fold's
    kits held out, the model selected on them as `select_on_validation` selects on the validation kits.
    One fold of about a thousand clips differs from the next by some ±0.02 (docs/model-history.md,
    "Cross-validation over kits"); the mean over folds moves less. The test kits are never read.
    `probabilities_out` keeps every clip's calibrated out-of-fold probabilities (.npz), so a decision rule
    or an ensemble of runs can be judged later on the same folds without training again. `like` takes the
    folds from such a file instead (`folds_of_earlier_run`). With `library_norm`, each fold's model is also
    scored with its batch-normalization statistics measured on the held-out fold (`library_norm`), as if the
    fold were a user's library, and with them measured on each held-out kit alone; same temperature. With
    `share` below 1, each fold's model learns from only that share of the other folds' clips (`share_of_kits`)."""
    quiet_tensorflow()
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    classes = list(FINE_CLASSES)
    rate = setup.recipe.sample_rate
    whole = joined(load_split(dataset, "train", classes, rate), load_split(dataset, "validation", classes, rate))
    runs = {}
    out_of_fold = np.zeros((len(whole.labels), len(classes)), dtype=np.float32)
    fold_of_row = np.zeros(len(whole.labels), dtype=int)
    renormalized = {"library": np.zeros_like(out_of_fold), "kit": np.zeros_like(out_of_fold)}
    renormalized_runs: dict[str, dict[int, Any]] = {"library": {}, "kit": {}}
    held_out = folds_of_earlier_run(like, whole.kits) if like else kit_folds(whole.kits, folds)
    if len(held_out) != folds:
        raise DrumcatError(f"{like} holds {len(held_out)} folds, not {folds}")
    for number, held in enumerate(held_out, start=1):
        fitting = share_of_kits(np.setdiff1d(np.arange(len(whole.labels)), held), whole.kits, share)
        fit_split, held_split = subset(whole, fitting), subset(whole, held)
        x_held = features_of(held_split.clips, setup.recipe)
        chosen = select_on_validation(seed, fit_split, held_split, x_held, classes, epochs=epochs, setup=setup)
        probabilities = apply_temperature(chosen.validation_probabilities, chosen.temperature)
        out_of_fold[held], fold_of_row[held] = probabilities, number
        runs[number] = {**evaluate_split(probabilities, held_split.labels, classes),
                        "per_source": per_source(probabilities, held_split, classes)}
        core = runs[number]["core"]
        print(f"fold {number} of {folds} ({len(held)} clips held out, {len(fitting)} to learn from): "
              f"core accuracy {core['accuracy']:.4f}, macro-F1 {core['macro_f1']:.4f}")
        if library_norm:
            for scope, adapted in renormalized_probabilities(chosen.model, x_held, held_split.kits).items():
                adapted = apply_temperature(adapted, chosen.temperature)
                renormalized[scope][held] = adapted
                renormalized_runs[scope][number] = {**evaluate_split(adapted, held_split.labels, classes),
                                                    "per_source": per_source(adapted, held_split, classes)}
                core = renormalized_runs[scope][number]["core"]
                print(f"fold {number}, statistics per {scope}: core accuracy {core['accuracy']:.4f}, "
                      f"macro-F1 {core['macro_f1']:.4f}")
    if probabilities_out:
        probabilities_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(probabilities_out, probabilities=out_of_fold, fold=fold_of_row, classes=np.array(classes),
                            labels=np.array([classes[i] for i in whole.labels]), kits=np.array(whole.kits),
                            sources=np.array(whole.sources), paths=np.array(whole.paths),
                            **({f"probabilities_{scope}_norm": p for scope, p in renormalized.items()}
                               if library_norm else {}))
    summary = {"folds": folds, "seed": seed, **({"kit_share": share} if share < 1 else {}),
               **{k: v for k, v in seed_summary(runs).items() if k != "seeds"}}
    if library_norm:
        summary["renormalized"] = {scope: {k: v for k, v in seed_summary(each).items() if k != "seeds"}
                                   for scope, each in renormalized_runs.items()}
    return summary


def renormalized_probabilities(model: Any, x: np.ndarray, kits: list[str]) -> dict[str, np.ndarray]:
    """`model`'s probabilities for `x` with its batch-normalization statistics measured on all of `x`
    ("library") and on each kit's own clips ("kit")."""
    by_library = with_library_statistics(model, x).predict(x, batch_size=256, verbose=0)
    by_kit = np.zeros_like(by_library)
    kit_array = np.array(kits)
    for kit in sorted(set(kits)):
        rows = np.flatnonzero(kit_array == kit)
        by_kit[rows] = with_library_statistics(model, x[rows]).predict(x[rows], batch_size=256, verbose=0)
    return {"library": by_library, "kit": by_kit}


def candidate_on_validation(
    dataset: Path, *, epochs: int = 30, copies: int = 3, seeds: tuple[int, ...] = (1,),
    teacher_targets_path: Path | None = None, tail_seconds: float = RECIPE.tail_seconds,
    core_weight: float = CORE_WEIGHT, kit_balance: bool = False, kit_folds: int = 0,
    fold_probabilities: Path | None = None, ema: float = 0.0, decay_reshape: float = 0.0, synth_train_kits: int = 0,
    folds_like: Path | None = None, recipe_name: str | None = None, pooling: str = POOLINGS[0],
    library_norm: bool = False, input_view: str = INPUT_VIEWS[0], kit_share: float = 1.0,
    widths: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """`drumcat train --validation-only`: the recipe `train` would run with these options, on validation
    (or, with `kit_folds`, by grouped cross-validation over the training + validation kits, first seed)."""
    setup = Setup.of(copies=copies, tail_seconds=tail_seconds, teacher_targets_path=teacher_targets_path,
                     core_weight=core_weight, kit_balance=kit_balance, ema=ema, decay_reshape=decay_reshape,
                     synth_train_kits=synth_train_kits, recipe=recipe_for(dataset, recipe_name), pooling=pooling,
                     input_view=input_view, widths=widths)
    if kit_folds:
        return compare_on_kit_folds(dataset, setup, folds=kit_folds, epochs=epochs, seed=seeds[0],
                                    probabilities_out=fold_probabilities, like=folds_like,
                                    library_norm=library_norm, share=kit_share)
    return compare_on_validation(dataset, setup, epochs=epochs, seeds=seeds)


def train(
    dataset: Path, out: Path, *, epochs: int = 30, copies: int = 3, seeds: tuple[int, ...] = (1,),
    refit: bool = True, teacher_path: Path | None = None, teacher_targets_path: Path | None = None,
    tail_seconds: float = RECIPE.tail_seconds, core_weight: float = CORE_WEIGHT, kit_balance: bool = False,
    ema: float = 0.0, members: int = 1, lite_weights: str = "float32", decay_reshape: float = 0.0,
    synth_train_kits: int = 0, recipe_name: str | None = None, pooling: str = POOLINGS[0],
    input_view: str = INPUT_VIEWS[0], widths: tuple[int, ...] | None = None,
) -> ModelCard:
    """Train the default model once per seed and ship the first seed's model (fixed before any run, so
    no run is chosen by its test score); the card gives its figures and the mean and spread over seeds.
    With `teacher_path`, half-size students distilled from that model; with `teacher_targets_path`, the
    same network distilled from precomputed probabilities (TeacherTargets). With `members`, each seed's
    model is that many networks averaged (`build_model`); `lite_weights` is how the LiteRT export that
    `infer` runs stores its weights, and the card gives that export's own test figures too."""
    quiet_tensorflow()
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # a seed's run can be repeated exactly
    classes = list(FINE_CLASSES)
    started = time.time()
    setup = Setup.of(copies=copies, tail_seconds=tail_seconds, teacher_path=teacher_path,
                     teacher_targets_path=teacher_targets_path, core_weight=core_weight, kit_balance=kit_balance,
                     ema=ema, members=members, decay_reshape=decay_reshape, synth_train_kits=synth_train_kits,
                     recipe=recipe_for(dataset, recipe_name), pooling=pooling, input_view=input_view,
                     widths=widths)
    teacher, recipe = setup.teacher, setup.recipe
    rate = recipe.sample_rate
    train_split = load_split(dataset, "train", classes, rate)
    val_split = load_split(dataset, "validation", classes, rate)
    test_split = load_split(dataset, "test", classes, rate)
    x_val, x_test = features_of(val_split.clips, recipe), features_as_read(test_split.clips, recipe)
    runs = {seed: fit_seed(seed, train_split, val_split, test_split, x_val, x_test, classes, epochs=epochs,
                           refit=refit, setup=setup)
            for seed in seeds}
    shipped = runs[seeds[0]]
    metrics = {
        "evaluated_on": "held-out kits, fonts and machines (test split); never clips of a training kit",
        "test_kits": sorted(set(test_split.kits)),
        "test": shipped.test,
        "validation": shipped.validation,
        "seeds": {**seed_summary({seed: run.test for seed, run in runs.items()}),
                  "core_kit_interval": kit_interval_on_test(
                      test_split, [run.test_core_predictions for run in runs.values()], classes)},
    }
    metrics["test"]["core"]["kit_interval"] = kit_interval_on_test(test_split, [shipped.test_core_predictions],
                                                                   classes)
    if shipped.test_before_refit:  # what the refit changed, on the same test kits
        metrics["test_before_refit"] = shipped.test_before_refit
    counts = {split: dict(sorted(Counter(classes[i] for i in s.labels).items()))
              for split, s in (("train", train_split), ("validation", val_split), ("test", test_split))}
    summary = json.loads((dataset / "summary.json").read_text())
    card = ModelCard(
        name=out.stem, version=MODEL_VERSION, labels=classes, features=recipe, weights_sha256="",
        temperature=shipped.temperature, embedding_layer="embedding", metrics=metrics, created_at=utc_now(),
        training={
            "sources": {"debian_packages": package_versions(),
                        "collections": summary.get("collections", {}),
                        "synthesized": "Noise: noise bursts; Reverse: reversed hits of the same split; "
                                       "Vox: espeak-ng syllables"
                                       + (f"; {synth_train_kits} synthesized kits (drumcat/model/train/synth_kits.py, "
                                          f"kits 0-{synth_train_kits - 1}) in every fit, never validated or tested on"
                                          if synth_train_kits else "")},
            "dataset_summary": summary.get("per_source"),
            "clips_per_split": counts,
            "thin_classes": [c for c in classes if counts["train"].get(c, 0) < 10],
            "splits": "whole kits/fonts/machines: the Debian validation and test kits are listed in "
                      "drumcat/model/train/dataset.py; a collection's machines are assigned by a hash of their name "
                      "(drumcat/model/train/sources.py)",
            "augmentation": f"{copies} copies per clip: pitch +-2.5 semitones, onset shift 0-20 ms, synthetic "
                            "room reverb, low/high/band-pass, soft-clip drive, gain -18..0 dB over a noise "
                            "floor, early fade-out"
                            + (f", the decay reshaped by exp(k t), k in {list(DECAY_SLOPES)} per second, on "
                               f"{decay_reshape:.0%} of them" if decay_reshape else "")
                            + "; SpecAugment band and time masks",
            "class_balancing": "class weights, inverse square root of frequency, clipped to 0.3..4"
                               + ("; kit weights, inverse square root of the kit's size, clipped to 0.25..4"
                                  if kit_balance else ""),
            "regularization": "mixup (power domain, Beta(0.4, 0.4)) on half the augmented copies, label "
                              "smoothing 0.05, AdamW weight decay 1e-3, dropout 0.4"
                              + (f"; loss: fine cross-entropy + {core_weight:g} x core-class cross-entropy"
                                 if core_weight else "")
                              + (f"; weights averaged (EMA, momentum {ema:g} per step), validated and kept"
                                 if ema else ""),
            "epochs_run": shipped.epochs_run[0] if members == 1 else shipped.epochs_run,
            "seed": seeds[0], "seeds_measured": list(seeds),
            **({"ensemble": f"{members} networks per seed, trained with seeds s + {MEMBER_SEED_STEP} x k "
                            f"(k = 0..{members - 1}); the shipped model averages their logits",
                "member_seeds": member_seeds(seeds[0], members)} if members > 1 else {}),
            "determinism": "tf.config.experimental.enable_op_determinism(); keras.utils.set_random_seed(seed)",
            "selection": f"early stopping on validation loss chose epoch "
                         f"{' / '.join(map(str, shipped.best_epochs))}"
                         + (" (per member)" if members > 1 else "")
                         + "; the temperature is fitted on the validation kits with "
                         + ("that model" if members == 1 else "the members' average")
                         + ("; the shipped model is then refit on train + validation kits for that many epochs "
                            "with the same learning rates (metrics.validation is the selection model's)"
                            if refit else "")
                         + f"; the shipped seed ({seeds[0]}) was fixed before training",
            "train_seconds": round(time.time() - started), "machine": machine_description(),
            "kernels": kernels_in_effect(), "python_packages": python_package_versions(),
            "dataset_sha256": dataset_digest(dataset), "network_sha256": network_digest(shipped.model),
            "architecture": f"CNN, convolution widths {list(setup.widths)}"
                            + ("; the last maps pooled over time only, per band row" if pooling == "time" else "")
                            + ("; a second input channel, each band minus its mean over frames"
                               if input_view == "band-centered" else "")
                            + (f"; an ensemble of {members} of them" if members > 1 else ""),
            "litert_weights": lite_weights,
            "distillation": (teacher.describe() if teacher else
                             setup.teacher_targets.describe() if setup.teacher_targets else None),
        },
    )
    # fit_seed's models are fresh copies without optimizer state (`ensemble_of`): what inference needs.
    save_bundle(shipped.model, card, out)
    if card.litert_sha256:  # exported (a network LiteRT cannot express runs on Keras, and has no such figures)
        card.metrics["test_litert"] = litert_on_test(out, x_test, test_split, card, shipped.test_core_predictions)
        write_whole(card_path_for(out), card.to_json())
    return card


def litert_on_test(model_path: Path, x_test: np.ndarray, test_split: Split, card: ModelCard,
                   keras_core_predictions: list[str]) -> dict[str, Any]:
    """The test figures of the LiteRT export `infer` runs (it may store its weights quantized), and the
    share of test clips it files under the same core folder as the Keras model."""
    lite_path = lite_path_for(model_path)
    lite = LiteRuntime(lite_path.read_bytes(), lite_path, threads=1)
    lite_probs = apply_temperature(np.concatenate([lite.run(x_test[i:i + 256])[0]
                                                   for i in range(0, len(x_test), 256)]), card.temperature)
    core = evaluate_split(lite_probs, test_split.labels, card.labels)["core"]
    same = np.mean(np.array(core_decisions(lite_probs, card.labels).labels) == np.array(keras_core_predictions))
    return {"weights": card.lite_weights, "core_accuracy": core["accuracy"],
            "core_macro_f1": core["macro_f1"], "same_core_folder_as_keras": round(float(same), 4)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train the default drumcat model.")
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--out", type=Path, default=Path("models/drumcat-v2.keras"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--seeds", default="1", help="comma-separated seeds; the first one is shipped")
    parser.add_argument("--no-refit", dest="refit", action="store_false",
                        help="ship the model validation chose instead of refitting it on train + validation")
    parser.add_argument("--teacher", type=Path, help="distil a half-size student from this trained model")
    parser.add_argument("--teacher-targets", type=Path,
                        help="distil from precomputed out-of-kit probabilities (bench/probe_aisfx.py --teacher-out)")
    parser.add_argument("--tail-seconds", type=float, default=RECIPE.tail_seconds,
                        help="seconds after the first one seen at a coarse time resolution (0: none)")
    parser.add_argument("--core-weight", type=float, default=CORE_WEIGHT,
                        help="weight of a core-class cross-entropy beside the fine one (0: none)")
    parser.add_argument("--validation-only", action="store_true",
                        help="print the candidate's figures on the validation kits (no refit, no test, nothing "
                             "saved); `drumcat train --validation-only` runs in the thread settings of `drumcat "
                             "train`, which a run must share to repeat digit for digit")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.validation_only:
        print(json.dumps(candidate_on_validation(args.dataset, epochs=args.epochs, copies=args.copies, seeds=seeds,
                                                 teacher_targets_path=args.teacher_targets,
                                                 tail_seconds=args.tail_seconds, core_weight=args.core_weight),
                         indent=1))
        return
    card = train(args.dataset, args.out, epochs=args.epochs, copies=args.copies, refit=args.refit,
                 seeds=seeds, teacher_path=args.teacher,
                 teacher_targets_path=args.teacher_targets, tail_seconds=args.tail_seconds,
                 core_weight=args.core_weight)
    test = card.metrics["test"]
    print(json.dumps({"fine_accuracy": test["fine"]["accuracy"], "fine_macro_f1": test["fine"]["macro_f1"],
                      "core_accuracy": test["core"]["accuracy"], "core_macro_f1": test["core"]["macro_f1"],
                      "ece": test["fine"]["ece"], "temperature": card.temperature}, indent=2))


if __name__ == "__main__":
    main()

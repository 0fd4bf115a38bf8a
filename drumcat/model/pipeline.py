"""The per-file feature pipeline: decode, downmix, resample, features and (LiteRT) the model call, run
the same way by `infer` (in worker processes) and `evaluate` (in-process); `train` computes the same
features from the same recipe (drumcat/audio/features.py).

Nothing here knows the catalog: items are (key, path) pairs, and a chunk comes back as the model's
outputs or as features for the caller's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from drumcat.audio.features import (
    SILENT_PEAK,
    FeatureRecipe,
    clip_start,
    compute_features,
    features_at_rates,
    from_cut,
    is_silent,
    prepare_clips,
)
from drumcat.audio.files import AudioReadError, decode, decode_native, resample
from drumcat.model.bundle import ModelBundle, read_checked_lite
from drumcat.model.metrics import calibrated
from drumcat.model.runtime import LiteRuntime

DECODE_MARGIN_S = 0.05  # read a little past the clip so resampling has context at its end
LATEST_ONSET_SECONDS = 30.0  # a sound that starts later than this is not a one-shot's


def featurize(items: list[tuple[str, str]], recipe: FeatureRecipe) -> tuple[list[str], np.ndarray, list[tuple]]:
    """Decode and compute features for (hash, path) items. Returns hashes, features, and (hash, path, error)."""
    hashes, clips, rates, errors = [], [], [], []
    for digest, path in items:
        try:
            samples, rate = decode_for(path, recipe)
        except (AudioReadError, OSError, SilentFile) as exc:
            errors.append((digest, path, str(exc) or type(exc).__name__))
            continue
        hashes.append(digest)
        clips.append(samples)  # prepare_clips trims or pads it to the clip length
        rates.append(rate)
    if not clips:
        return hashes, np.zeros((0, *recipe.input_shape), dtype=np.float32), errors
    return hashes, features_at_rates(*resampled_without_form(clips, rates, recipe), recipe), errors


def decode_for(path: str, recipe: FeatureRecipe) -> tuple[np.ndarray, int]:
    """A file's samples and their rate: the recipe's, or with `native_rates` the file's own where it is
    higher (`resampled_without_form` then resamples the rates the recipe has no form for). With
    `start_at_onset`, from where its sound starts (`clip_start`); a file whose sound starts later than the
    read's margin is read again that much longer, so the clip still holds recipe.total_seconds of it, and
    one silent as far as the first read went is read on, up to LATEST_ONSET_SECONDS. Raises SilentFile
    for a file with nothing above SILENT_PEAK where the model would read it. What is returned starts the
    recipe's `lead_seconds` before the cut (`from_cut`)."""
    length = recipe.total_seconds + DECODE_MARGIN_S
    samples, rate = _decoded(path, recipe, length)
    silent = is_silent(samples)
    if not recipe.start_at_onset:
        if silent:
            raise _silent(f"the first {recipe.total_seconds:g} s, all the model reads")
        return from_cut(samples, 0, rate, recipe), rate
    cut_short = _cut_short(samples, rate, length)
    if cut_short and silent:  # the sound may start later
        length = LATEST_ONSET_SECONDS + recipe.total_seconds + DECODE_MARGIN_S
        samples, rate = _decoded(path, recipe, length)
        silent, cut_short = is_silent(samples), _cut_short(samples, rate, length)
    if silent:
        raise _silent(f"its first {length:.0f} s" if cut_short else "the whole file")
    start = clip_start(samples, rate)
    if cut_short and start > (length - recipe.total_seconds) * rate:  # the read ends inside the clip
        samples, rate = _decoded(path, recipe, length + start / rate)
        start = clip_start(samples, rate)
    return from_cut(samples, start, rate, recipe), rate


class SilentFile(Exception):
    """A file with no sound to classify: recorded with its reason, like a file that cannot be decoded."""


def _silent(where: str) -> SilentFile:
    return SilentFile(f"silent: nothing above {20 * np.log10(SILENT_PEAK):.0f} dBFS in {where}; "
                      "not classified, so it is in no folder")


def _cut_short(samples: np.ndarray, rate: int, seconds: float) -> bool:
    """Whether a read of at most `seconds` stopped at that limit, before the file's end."""
    return samples.shape[0] >= seconds * rate - 1


def _decoded(path: str, recipe: FeatureRecipe, max_seconds: float) -> tuple[np.ndarray, int]:
    if not recipe.native_rates:
        return decode(path, recipe.sample_rate, max_seconds=max_seconds), recipe.sample_rate
    return decode_native(path, recipe.sample_rate, max_seconds=max_seconds)


def resampled_without_form(clips: list[np.ndarray], rates: list[int],
                           recipe: FeatureRecipe) -> tuple[list[np.ndarray], list[int]]:
    """The clips at a rate the recipe has no form for (`FeatureRecipe.at_rate` is None) resampled to the
    recipe's rate; the others as they are. Asked once per rate in a chunk, not once per file."""
    without_form = {rate for rate in set(rates) if recipe.at_rate(rate) is None}
    if not without_form:
        return clips, rates
    target = recipe.sample_rate
    resampled = [resample(clip, rate, target) if rate in without_form else clip
                 for clip, rate in zip(clips, rates, strict=True)]
    return resampled, [target if rate in without_form else rate for rate in rates]


CRASHED = ("the decoder crashed on this file (its worker process died); not classified. Check the file: "
           "another program may read it, or convert it")


@dataclass
class Chunk:
    """What a worker makes of a chunk of (hash, path) items: the model's outputs when the worker runs the
    model (LiteRT), else the features for the main process to run it on (Keras)."""

    hashes: list[str]
    errors: list[tuple]
    features: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def with_crashed(self, items: list[tuple[str, str]]) -> Chunk:
        """This chunk with `items`, the (hash, path) pairs that killed a worker, among its errors."""
        self.errors.extend((digest, path, CRASHED) for digest, path in items)
        return self


@dataclass
class ChunkProcessor:
    """Decode, features and (when it has a LiteRT model) the model itself, for one chunk of items.
    Runs in each worker process; one thread, as the workers are already one per core."""

    recipe: FeatureRecipe
    lite_path: Path | None = None
    lite_sha256: str | None = None
    temperature: float = 1.0

    @classmethod
    def for_bundle(cls, bundle: ModelBundle) -> ChunkProcessor:
        card = bundle.card
        return cls(card.features, bundle.lite_path, card.litert_sha256, card.temperature)

    @cached_property
    def runtime(self) -> LiteRuntime | None:
        """Loaded on first use, in the process that uses it (50 ms), from bytes checked against the card's
        hash again: a worker runs exactly the model the parent checked, or fails."""
        if self.lite_path is None or self.lite_sha256 is None:
            return None
        return LiteRuntime(read_checked_lite(self.lite_path, self.lite_sha256), self.lite_path, threads=1)

    def warm_up(self) -> None:
        """Import what the work needs and build its caches (filterbank, window, resampler) on one silent
        clip. Called in the parent before forking, so each worker starts with them instead of spending
        its first 0.2 s importing scipy.fft and soxr."""
        resample(np.zeros(64, dtype=np.float32), 44_100, self.recipe.sample_rate)
        compute_features(prepare_clips([np.zeros(1, dtype=np.float32)], self.recipe), self.recipe)

    def __call__(self, items: list[tuple[str, str]]) -> Chunk:
        hashes, features, errors = featurize(items, self.recipe)
        if self.runtime is None:
            return Chunk(hashes, errors, features=features)
        if not hashes:
            return Chunk(hashes, errors)
        probabilities, embeddings = calibrated(*self.runtime.run(features), self.temperature, self.runtime.where)
        return Chunk(hashes, errors, probabilities=probabilities, embeddings=embeddings)

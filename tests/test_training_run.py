"""`drumcat train` end to end on a small real dataset of synthesized one-shots: selection, refit, card."""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest

from drumcat.audio.synth import render, write_sample
from drumcat.model.bundle import load_bundle
from drumcat.model.metrics import apply_temperature
from drumcat.model.train.dataset import Clip, without_duplicates, without_shared_recordings
from drumcat.model.train.train import (
    POOLINGS,
    RECIPE,
    STUDENT_WIDTHS,
    WIDTHS,
    Teacher,
    build_model,
    dataset_digest,
    ensemble_of,
    evaluate_split,
    features_as_read,
    features_of,
    load_split,
    member_seeds,
    network_digest,
    train,
)
from drumcat.taxonomy import canonical, core_decisions

KITS = {"kit-a": "train", "kit-b": "train", "kit-c": "validation", "kit-d": "test"}


def small_dataset(root: Path, rate: int | None = None) -> Path:
    """Three kits' kicks, snares and hats; `rate` writes the clips at that rate and says so in the summary,
    as `python -m drumcat.model.train.dataset --rate` does (None: a dataset from before it did)."""
    rows = []
    for kit_index, (kit, split) in enumerate(KITS.items()):
        for label in ("Kick", "Snare", "Hihat"):
            for take in range(6):
                path = root / "clips" / f"{kit}-{label}-{take}.wav"
                write_sample(path, render(label, seed=100 * kit_index + take), sample_rate=rate or 22_050)
                rows.append({"path": str(path.relative_to(root)), "label": label, "source": "synth", "kit": kit,
                             "split": split, "origin": f"{label} {take}"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"per_source": {"synth": len(rows)}, **({"clip_rate": rate} if rate else {})}
    (root / "summary.json").write_text(json.dumps(summary))
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
    again = evaluate_split(bundle.predict(features_as_read(clips.clips))[0], clips.labels, card.labels)
    assert again["core"]["accuracy"] == test["core"]["accuracy"]
    assert card.features.lead_seconds == RECIPE.lead_seconds > 0  # measured as infer reads files, lead and all
    assert card.training["machine"].startswith(f"{platform.machine()} CPU")  # with its instruction sets, where known
    assert f", {os.cpu_count()} logical CPUs" in card.training["machine"]  # and its caches, where the system lists them
    assert card.training["python_packages"]["numpy"] == np.__version__  # what computed the run, with versions
    assert card.training["python_packages"]["python"] == platform.python_version()
    assert card.metrics["seeds"]["seeds"] == [1] and card.metrics["seeds"]["core_accuracy"]["std"] == 0.0
    assert set(test["per_source"]["sources"]) == {"synth"}
    assert set(card.metrics["test_before_refit"]) == {"fine", "core"}
    assert "refit on train + validation" in card.training["selection"]
    assert card.training["clips_per_split"]["validation"] == {"Hihat": 6, "Kick": 6, "Snare": 6}
    assert 0.25 <= card.temperature <= 5.0
    interval = test["core"]["kit_interval"]  # one test kit here: every draw is that kit
    assert interval["kits"] == 1 and interval["accuracy"] == [test["core"]["accuracy"]] * 2
    assert card.metrics["seeds"]["core_kit_interval"]["accuracy"] == interval["accuracy"]


def test_identical_clips_are_dropped_once() -> None:
    hit = render("Kick", seed=1)
    clips = [Clip(hit, "Kick", "a", "kit-a", "1"), Clip(hit.copy(), "Kick", "b", "kit-b", "2"),
             Clip(render("Kick", seed=2), "Kick", "a", "kit-a", "3")]
    kept, dropped = without_duplicates(clips)
    assert dropped == 1
    assert [c.origin for c in kept] == ["1", "3"]
    assert not np.shares_memory(kept[0].samples, kept[1].samples)


def test_a_recording_two_kits_share_is_kept_once_in_the_held_out_kit() -> None:
    crash, snare, tom, kick = (render(name, seed=1) for name in ("Crash", "Snare", "Tom", "Kick"))
    clips = [
        Clip(0.5 * crash, "Crash", "hydrogen-drumkits", "hydrogen:The Black Pearl 1.0", "train copy, read first"),
        Clip(crash, "Crash", "avldrums.lv2-soundfont", "avldrums:Red_Zeppelin_4_LV2", "test copy"),
        Clip(snare, "Snare", "timgm6mb-soundfont", "timgm6mb:all", "validation copy"),
        Clip(np.concatenate([np.zeros(300, np.float32), 0.8 * snare]), "Snare", "csound-soundfont", "csound-gm:all",
             "train copy, padded"),
        Clip(tom, "Tom", "hydrogen-data", "hydrogen:GMRockKit", "first train kit"),
        Clip(0.7 * tom, "Tom", "hydrogen-data", "hydrogen:TR808EmulationKit", "second train kit"),
        Clip(kick, "Kick", "csound-soundfont", "csound-gm:all", "one kit, two presets"),
        Clip(0.6 * kick, "Kick", "csound-soundfont", "csound-gm:all", "one kit, the other preset"),
        Clip(render("Crash", seed=2), "Crash", "hydrogen-drumkits", "hydrogen:The Black Pearl 1.0", "another take"),
    ]
    kept, lost = without_shared_recordings(clips)
    assert [clip.origin for clip in kept] == ["test copy", "validation copy", "first train kit", "one kit, two presets",
                                              "one kit, the other preset", "another take"]
    assert lost == {"hydrogen:The Black Pearl 1.0": 1, "csound-gm:all": 1, "hydrogen:TR808EmulationKit": 1}


def test_the_dataset_drops_shared_recordings_by_drumcats_own_comparison() -> None:
    """An 80 ms hit and its copy with 20 ms of silence before it, 1.25 times as long: drumcat's comparison
    pairs them (its 50 ms duration slack), and since 3.7.1 (run 66) so does `make dataset`, keeping the
    held-out copy. Fails with the dataset's old rule (no slack), which kept both."""
    from drumcat.audio.fingerprint import fingerprints
    from drumcat.audio.pair_search import close_pairs
    from drumcat.model.train.dataset import CLIP_RATE, FINGERPRINT_RATE

    hit = render("Snare", seed=3)[: int(0.08 * CLIP_RATE)] * np.linspace(1, 0, int(0.08 * CLIP_RATE), dtype=np.float32)
    padded = np.concatenate([np.zeros(int(0.02 * CLIP_RATE), np.float32), hit])
    clips = [Clip(hit, "Snare", "hydrogen-data", "hydrogen:GMRockKit", "train copy"),
             Clip(padded, "Snare", "avldrums.lv2-soundfont", "avldrums:Red_Zeppelin_4_LV2", "test copy, padded")]
    prints = fingerprints([clip.samples for clip in clips], FINGERPRINT_RATE)  # CLIP_RATE is the same rate
    assert list(close_pairs(prints, np.array([0.08, 0.1]))[0]) == [(0, 1)]
    kept, lost = without_shared_recordings(clips)
    assert [clip.origin for clip in kept] == ["test copy, padded"] and lost == {"hydrogen:GMRockKit": 1}


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


def test_teacher_targets_blend_out_of_kit_probabilities_into_every_copy(tmp_path: Path) -> None:
    """Precomputed teacher probabilities (bench/probe_aisfx.py --teacher-out) replace the one-hot targets
    of the clips they cover, in each augmented copy; clips they do not cover keep their label; the
    card names the teacher file."""
    from drumcat.model.train.train import TeacherTargets, augmented_training_set
    from drumcat.taxonomy import FINE_CLASSES

    dataset = small_dataset(tmp_path / "dataset")
    classes = list(FINE_CLASSES)
    split = load_split(dataset, "train", classes)
    rng = np.random.default_rng(0)
    covered = split.paths[: len(split.paths) // 2]
    probabilities = rng.dirichlet(np.ones(len(classes)), size=len(covered)).astype(np.float32)
    teacher_file = tmp_path / "teacher.npz"
    np.savez(teacher_file, paths=np.array(covered), classes=np.array(classes), selection=probabilities,
             refit=probabilities[::-1], source=np.array("a test teacher"))

    teacher = TeacherTargets.load(teacher_file, classes)
    blended = teacher.for_split(split, "selection", len(classes))
    one_hot = np.eye(len(classes), dtype=np.float32)[split.labels]
    np.testing.assert_allclose(blended[: len(covered)], 0.5 * one_hot[: len(covered)] + 0.5 * probabilities,
                               rtol=1e-6)
    np.testing.assert_array_equal(blended[len(covered):], one_hot[len(covered):])
    assert not np.allclose(teacher.for_split(split, "refit", len(classes))[: len(covered)], blended[: len(covered)])

    _, targets, labels = augmented_training_set(split, 2, 1, len(classes), clip_targets=blended)
    unmixed = np.isclose(targets.max(axis=1), blended.max(axis=1)[np.tile(np.arange(len(split.clips)), 3)])
    assert unmixed[: len(split.clips)].all()  # the plain clips: exactly their blended targets
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)

    card = train(dataset, tmp_path / "models" / "distilled.keras", epochs=1, copies=1, refit=False,
                 teacher_targets_path=teacher_file)
    assert "teacher.npz" in card.training["distillation"]["teacher"]
    assert "a test teacher" in card.training["distillation"]["teacher"]


def test_a_model_with_a_tail_trains_and_infers_with_its_recipe(tmp_path: Path) -> None:
    """The multi-scale recipe travels in the card: the saved bundle's input has the tail's frames and
    the same bundle scores the test clips as the card says."""
    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "models" / "tail.keras"
    card = train(dataset, out, epochs=1, copies=1, refit=False, tail_seconds=1.0)
    bundle = load_bundle(out)
    assert bundle.card.features.tail_seconds == 1.0
    assert bundle.card.features.input_shape == (64, 87 + 22, 1)
    clips = load_split(dataset, "test", card.labels)
    again = evaluate_split(bundle.predict(features_as_read(clips.clips, bundle.card.features))[0], clips.labels,
                           card.labels)
    assert again["core"]["accuracy"] == card.metrics["test"]["core"]["accuracy"]


def test_synthesized_kits_are_distinct_repeatable_and_held_out_whole() -> None:
    from drumcat.model.train import synth_kits
    from drumcat.model.train.dataset import split_of
    from drumcat.taxonomy import FINE_CLASSES

    first = list(synth_kits.kit_sounds(3, 22_050))
    again = list(synth_kits.kit_sounds(3, 22_050))
    other = list(synth_kits.kit_sounds(4, 22_050))
    assert [label for label, _, _ in first] == [label for label, _, _ in other]
    assert {label for label, _, _ in first} <= set(FINE_CLASSES)
    for (_, _, a), (_, _, b), (_, _, c) in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)  # seeded by the kit's number
        assert a.shape != c.shape or not np.allclose(a, c)  # another kit, another sound
        assert np.isfinite(a).all() and 0.5 < np.abs(a).max() <= 0.9
    counts = {split: sum(split_of(f"{synth_kits.PREFIX}{n}") == split
                         for n in synth_kits.ALL_KITS)
              for split in ("train", "validation", "test")}
    assert counts == {"train": synth_kits.TRAIN_KITS, "validation": synth_kits.VALIDATION_KITS,
                      "test": synth_kits.TEST_KITS}
    crash, kick = dict((name, s) for _, name, s in first)["crash"], dict((name, s) for _, name, s in first)["kick"]
    late = slice(22_050, None)
    assert np.abs(crash[late]).max() > 0.01  # cymbals still ring, above -40 dB, after the first second
    assert kick.size < crash.size


def test_an_analog_crash_is_the_hats_square_cluster_ringing_lower_and_longer() -> None:
    """Each kit's analog crash comes from the same six square waves as its hats (so a square cluster is not
    always a hat), band-passed lower and ringing longer than the kit's open hat."""
    import librosa

    from drumcat.model.train import synth_kits

    for number in range(6):
        sounds = {name: samples for _, name, samples in synth_kits.kit_sounds(number, 22_050)}
        crash, hat = sounds["analog crash"], sounds["open hat"]
        centroid = {name: librosa.feature.spectral_centroid(y=x, sr=22_050).mean() for name, x in
                    (("crash", crash), ("hat", hat))}
        assert centroid["crash"] < centroid["hat"]
        assert crash.size > hat.size and np.abs(crash[int(0.2 * 22_050):]).max() > 0.01


def test_synthesized_training_kits_join_every_fit_and_are_never_held_out(tmp_path: Path) -> None:
    """`--synth-train-kits`: the same real clips are held out in the same folds with and without the
    synthesized kits, none of those kits is scored, and they do change what the models learn."""
    from drumcat.model.train import synth_kits
    from drumcat.model.train.train import Setup, compare_on_kit_folds, synthesized_training_kits

    kits = synthesized_training_kits(2)
    assert set(kits.kits) == {f"{synth_kits.PREFIX}0", f"{synth_kits.PREFIX}1"}
    assert set(kits.sources) == {synth_kits.SOURCE} and len(kits.clips) == 2 * len(list(synth_kits.kit_sounds(0, 8000)))
    dataset = small_dataset(tmp_path / "dataset")
    runs = {}
    for count in (0, 1):
        out = tmp_path / f"folds-{count}.npz"
        compare_on_kit_folds(dataset, Setup(copies=1, synth_train_kits=count), folds=2, epochs=1,
                             probabilities_out=out)
        runs[count] = np.load(out)
    for key in ("paths", "fold", "labels", "kits"):
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    assert not any(kit.startswith(synth_kits.PREFIX) for kit in runs[1]["kits"])
    assert not np.allclose(runs[0]["probabilities"], runs[1]["probabilities"])


def test_kit_folds_also_score_statistics_measured_on_the_held_out_library(tmp_path: Path) -> None:
    """`--library-norm` (run 44): each fold's model scored again with its batch-normalization statistics
    measured on the held-out clips: per library and per kit are the same statistics where a fold holds one
    kit, differ where it holds two, and are not the training kits'."""
    from tests.helpers import drumcat

    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "folds.npz"
    result = drumcat("train", "--dataset", str(dataset), "--validation-only", "--kit-folds", "2", "--library-norm",
                     "--epochs", "1", "--copies", "1", "--fold-probabilities", str(out), cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert set(summary["renormalized"]) == {"library", "kit"}
    assert 0.0 <= summary["renormalized"]["library"]["core_accuracy"]["mean"] <= 1.0
    folds = np.load(out)
    np.testing.assert_allclose(folds["probabilities_library_norm"].sum(axis=1), 1.0, rtol=1e-5)
    one_kit = [f for f in (1, 2) if len(set(folds["kits"][folds["fold"] == f])) == 1]
    assert len(one_kit) == 1  # three kits in two folds: one fold holds a kit alone, the other two kits
    for fold, alike in ((one_kit[0], True), (3 - one_kit[0], False)):
        held = folds["fold"] == fold
        same = np.allclose(folds["probabilities_library_norm"][held], folds["probabilities_kit_norm"][held], atol=1e-5)
        assert same == alike
    assert not np.allclose(folds["probabilities_library_norm"], folds["probabilities"])


def test_a_candidate_compared_on_validation_is_the_model_train_selects(tmp_path: Path) -> None:
    """`--validation-only` runs the selection `train` runs: with op determinism and the same seed, the
    same validation figures, to the last digit (and it never reads the test kits)."""
    from drumcat.model.train.train import Setup, compare_on_validation

    dataset = small_dataset(tmp_path / "dataset")
    card = train(dataset, tmp_path / "models" / "selected.keras", epochs=2, copies=1, refit=False, seeds=(2,))
    compared = compare_on_validation(dataset, Setup(copies=1), epochs=2, seeds=(2,))
    for level, key in (("core", "accuracy"), ("core", "macro_f1"), ("fine", "accuracy"), ("fine", "ece")):
        assert compared[f"{level}_{key}"]["per_seed"] == [round(card.metrics["validation"][level][key], 4)]


def test_drumcat_train_validation_only_prints_validation_figures_and_writes_nothing(tmp_path: Path) -> None:
    from tests.helpers import drumcat

    dataset = small_dataset(tmp_path / "dataset")
    result = drumcat("train", "--dataset", str(dataset), "--validation-only", "--epochs", "1", "--copies", "1",
                     "--out", str(tmp_path / "never.keras"), cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert summary["seeds"] == [1] and 0.0 <= summary["core_accuracy"]["mean"] <= 1.0
    assert set(summary["per_source_core_accuracy"]) == {"synth"}
    assert not (tmp_path / "never.keras").exists()


def test_drumcat_train_runs_portable_kernels_and_its_card_says_so(tmp_path: Path) -> None:
    """By default `drumcat train` runs what an AVX2 CPU runs, in fixed thread counts, whatever this CPU has
    (drumcat/model/train/kernels.py), and the card records the kernels the run had."""
    from drumcat.model.bundle import ModelCard, card_path_for
    from drumcat.model.train.kernels import PORTABLE
    from tests.helpers import drumcat

    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "portable.keras"
    drumcat("train", "--dataset", str(dataset), "--epochs", "1", "--copies", "1", "--no-refit", "--out", str(out),
            cwd=tmp_path)
    kernels = ModelCard.read(card_path_for(out)).training["kernels"]
    assert kernels["portable"] is True
    assert not {"X86_V4", "AVX512_ICL", "AVX512_SPR"} & set(kernels["numpy_dispatch"])
    assert kernels["openblas"] == ["Haswell, 1 thread(s)"]
    assert kernels["ONEDNN_MAX_CPU_ISA"] == PORTABLE["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert kernels["TF_NUM_INTRAOP_THREADS"] == PORTABLE["TF_NUM_INTRAOP_THREADS"]
    # and the dataset it had, which a repeat needs as well: one changed clip changes the digest
    recorded = ModelCard.read(card_path_for(out)).training["dataset_sha256"]
    assert recorded == dataset_digest(dataset)
    clip = next((dataset / "clips").glob("*.wav"))
    changed = bytearray(clip.read_bytes())
    changed[-1] ^= 1  # the last sample's lowest bit
    clip.write_bytes(bytes(changed))
    assert dataset_digest(dataset) != recorded


def test_portable_kernels_give_the_same_network_whatever_the_thread_settings(tmp_path: Path) -> None:
    """The thread counts a machine or its user sets change a native run's network (the control); a portable
    run sets its own, so it gives the same network bit for bit (README, "Repeating a run on another machine")."""
    import os
    import subprocess
    import sys

    dataset = small_dataset(tmp_path / "dataset")

    def network(kernels: str, **environment: str) -> str:
        """The trained network's digest, as its card records it (the .keras file's hash differs on every save)."""
        out = tmp_path / f"{kernels}-{len(list(tmp_path.glob('*.keras')))}.keras"
        subprocess.run([sys.executable, "-m", "drumcat.cli", "train", "--dataset", str(dataset), "--epochs", "1",
                        "--copies", "1", "--no-refit", "--kernels", kernels, "--out", str(out)],
                       cwd=tmp_path, env={**os.environ, **environment}, check=True, capture_output=True)
        bundle = load_bundle(out)
        assert bundle.card.training["network_sha256"] == network_digest(bundle.keras_model)  # the saved arrays'
        return bundle.card.training["network_sha256"]

    if network("native", TF_NUM_INTRAOP_THREADS="1") == network("native", TF_NUM_INTRAOP_THREADS="3"):
        pytest.skip("on this machine 1 and 3 TensorFlow threads train the same network: nothing to show")
    assert network("portable", TF_NUM_INTRAOP_THREADS="1", OPENBLAS_NUM_THREADS="2") == network("portable")


def test_portable_kernels_cannot_be_chosen_once_numpy_has_loaded() -> None:
    """numpy and OpenBLAS read their kernels as they load: a late choice would be silently ignored."""
    from drumcat.model.train.kernels import kernels_in_effect, use_portable_kernels

    with pytest.raises(RuntimeError, match="before numpy"):
        use_portable_kernels()
    assert kernels_in_effect()["portable"] is False  # this process: the CPU's own kernels


def test_drumcat_train_refuses_an_unknown_export_or_member_count_in_one_line(tmp_path: Path) -> None:
    from tests.helpers import drumcat

    dataset = small_dataset(tmp_path / "dataset")
    for options, message in ((["--lite-weights", "int4"], "--lite-weights int4: use one of float32, int8, float16"),
                             (["--members", "0"], "--members 0: use 1"),
                             (["--members", "2", "--validation-only"], "--members compares on validation"),
                             (["--decay-reshape", "1.5"], "--decay-reshape 1.5: use a share between 0 and 1"),
                             (["--synth-train-kits", "151"], "--synth-train-kits 151: use 1 to 150"),
                             (["--pooling", "bands"], "--pooling bands: use one of global, time"),
                             (["--library-norm"], "--library-norm: add --kit-folds K"),
                             (["--input-view", "tilted"], "--input-view tilted: use one of plain, band-centered"),
                             (["--kit-share", "0.5"], "--kit-share 0.5: add --kit-folds K"),
                             (["--widths", "24,48"], "--widths 24,48: give four positive filter counts"),
                             (["--validation-only", "--kit-folds", "2", "--kit-share", "1.5"],
                              "--kit-share 1.5: use a share above 0 and at most 1"),
                             (["--kernels", "fastest"], "--kernels fastest: use one of portable, native")):
        result = drumcat("train", "--dataset", str(dataset), *options, cwd=tmp_path, check=False)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_core_loss_adds_the_cross_entropy_of_the_summed_core_probabilities() -> None:
    """`training_loss(w)` = fine cross-entropy (label smoothing 0.05) + w x the core-class cross-entropy,
    checked against numpy; a China taken for a Crash costs next to no core loss."""
    from drumcat.model.train.train import training_loss
    from drumcat.taxonomy import FINE_CLASSES, canonical, core_membership

    classes = list(FINE_CLASSES)
    membership = core_membership(classes)
    assert membership.sum(axis=1).tolist() == [1.0] * len(classes)
    rng = np.random.default_rng(0)
    predicted = rng.dirichlet(np.ones(len(classes)), size=5).astype(np.float32)
    truth = np.eye(len(classes), dtype=np.float32)[rng.integers(0, len(classes), 5)]
    smoothed = truth * 0.95 + 0.05 / len(classes)
    fine = -(smoothed * np.log(predicted)).sum(axis=1)
    core = -((truth @ membership) * np.log(predicted @ membership)).sum(axis=1)
    np.testing.assert_allclose(np.asarray(training_loss(0.0)(truth, predicted)), fine.mean(), rtol=1e-5)
    # Per sample (Keras weighs and averages them), where the plain loss is already averaged.
    np.testing.assert_allclose(np.asarray(training_loss(2.0)(truth, predicted)), fine + 2 * core, rtol=1e-5)
    crashes = [i for i, name in enumerate(classes) if canonical(name) == "Crash"]
    china, crash = (np.eye(len(classes), dtype=np.float32)[[i]] for i in crashes[:2])
    taken_for_crash = crash * 0.999 + 0.001 / len(classes)
    core_part = np.asarray(training_loss(1.0)(china, taken_for_crash)) - np.asarray(training_loss(0.0)(china,
                                                                                                         taken_for_crash))
    assert float(core_part.sum()) < 0.01


def test_kit_folds_hold_every_kit_out_once_in_folds_of_even_size() -> None:
    from drumcat.model.train.train import kit_folds

    sizes = {"a": 9, "b": 7, "c": 5, "d": 5, "e": 3, "f": 1}
    kits = [kit for kit, n in sizes.items() for _ in range(n)]
    folds = kit_folds(kits, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(kits)))  # every row held out once
    assert all(len({kits[i] for i in fold} & {kits[i] for i in other}) == 0
               for n, fold in enumerate(folds) for other in folds[n + 1:])  # no kit in two folds
    assert max(map(len, folds)) - min(map(len, folds)) <= 1  # 10 rows each here


def test_kit_folds_hold_a_family_of_kits_that_share_samples_out_together() -> None:
    from drumcat.model.train.train import kit_folds

    kits = ["hydrogen:Millo_MultiLayered2"] * 2 + ["hydrogen:Millo-Drums_v.1"] * 2 + ["machine:a", "machine:b",
                                                                                      "machine:c", "machine:d"]
    folds = kit_folds(kits, 3)
    assert any(set(fold) >= {0, 1, 2, 3} for fold in folds)


def test_kit_folds_spread_the_noise_bursts_so_every_fold_trains_on_some() -> None:
    """The synthesized noise bursts are independent draws: held out whole, one fold's model would never
    see the Noise class."""
    from drumcat.model.train.train import kit_folds

    kits = ["synth:train"] * 30 + ["synth:validation"] * 10 + [f"machine:{n}" for n in range(20) for _ in range(4)]
    folds = kit_folds(kits, 5)
    noise = [sum(kits[i].startswith("synth:") for i in fold) for fold in folds]
    assert all(count >= 4 for count in noise), noise
    assert all(len({kits[i] for i in fold if kits[i].startswith("machine:")} &
                   {kits[i] for i in other if kits[i].startswith("machine:")}) == 0
               for n, fold in enumerate(folds) for other in folds[n + 1:])  # real kits still held out whole


def test_a_share_of_the_kits_keeps_whole_kits_nested_in_the_larger_shares() -> None:
    """`--kit-share` (the learning curve over kits): a share is taken by whole kits, about that share of the
    clips, each smaller share's kits among a larger one's, and the noise bursts kept like kits of one clip."""
    from drumcat.model.train.train import share_of_kits

    kits = [f"machine:{n}" for n in range(40) for _ in range(5)] + ["synth:train"] * 20
    rows = np.arange(len(kits))
    shares = {share: share_of_kits(rows, kits, share) for share in (0.25, 0.5, 1.0)}
    assert shares[1.0].tolist() == rows.tolist()
    for share in (0.25, 0.5):
        kept = shares[share]
        assert share * len(rows) <= len(kept) < share * len(rows) + 5
        whole = {kits[i] for i in kept if kits[i].startswith("machine:")}
        assert sum(kits[i] in whole for i in kept) == 5 * len(whole)  # every kept kit with all its clips
    assert set(shares[0.25].tolist()) < set(shares[0.5].tolist())
    assert 0 < sum(kits[i] == "synth:train" for i in shares[0.5]) < 20  # draws spread, not a block


def test_kit_weights_let_a_big_kit_count_by_the_square_root_of_its_size() -> None:
    from drumcat.model.train.train import Setup, Split, kit_weights

    kits = ["big"] * 16 + ["small"] * 4
    weights = kit_weights(kits)
    assert abs(weights.mean() - 1) < 1e-6
    assert abs(weights[:16].sum() / weights[16:].sum() - 2.0) < 1e-5  # sqrt(16) : sqrt(4)
    split = Split([np.zeros(4)] * 20, np.array([0] * 10 + [1] * 10), kits, ["s"] * 20, ["p"] * 20)
    labels = np.tile(split.labels, 3)  # the clips and two augmented copies, as training_set stacks them
    plain, by_kit = Setup().sample_weights(split, labels, 2), Setup(kit_balance=True).sample_weights(split, labels, 2)
    np.testing.assert_allclose(by_kit, plain * np.tile(weights, 3))


def test_kit_fold_cross_validation_reports_every_fold(tmp_path: Path) -> None:
    from drumcat.model.train.train import Setup, compare_on_kit_folds

    dataset = small_dataset(tmp_path / "dataset")
    saved = tmp_path / "folds.npz"
    summary = compare_on_kit_folds(dataset, Setup(copies=1), folds=2, epochs=1, probabilities_out=saved)
    assert summary["folds"] == 2 and len(summary["core_accuracy"]["per_seed"]) == 2
    assert set(summary["per_source_core_accuracy"]) == {"synth"}
    kept = np.load(saved)  # every training + validation clip, scored by the fold that held its kit out
    assert kept["probabilities"].shape == (54, 34) and set(kept["fold"].tolist()) == {1, 2}
    np.testing.assert_allclose(kept["probabilities"].sum(axis=1), 1.0, rtol=1e-4)
    assert all(len(set(kept["fold"][kept["kits"] == kit].tolist())) == 1 for kit in ("kit-a", "kit-b", "kit-c"))
    held = kept["fold"] == 1
    filed = core_decisions(kept["probabilities"][held], [str(c) for c in kept["classes"]]).labels
    accuracy = float(np.mean([canonical(str(c)) == p for c, p in zip(kept["labels"][held], filed, strict=True)]))
    assert round(accuracy, 4) == summary["core_accuracy"]["per_seed"][0]


def test_kit_folds_with_a_share_of_the_kits_learn_from_fewer_clips(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from drumcat.model.train.train import Setup, compare_on_kit_folds

    dataset = small_dataset(tmp_path / "dataset")
    learned = {}
    for share in (1.0, 0.5):
        summary = compare_on_kit_folds(dataset, Setup(copies=1), folds=2, epochs=1, share=share)
        learned[share] = [int(n) for n in re.findall(r"(\d+) to learn from", capsys.readouterr().out)]
        assert summary.get("kit_share", 1.0) == share and len(summary["core_accuracy"]["per_seed"]) == 2
    pairs = list(zip(learned[0.5], learned[1.0], strict=True))  # a fold learning from one kit keeps it whole
    assert all(0 < half <= whole for half, whole in pairs) and any(half < whole for half, whole in pairs), learned


def test_a_moving_average_of_the_weights_is_what_the_folds_are_scored_with(tmp_path: Path) -> None:
    from drumcat.model.train.train import Setup, compare_on_kit_folds

    dataset = small_dataset(tmp_path / "dataset")
    scored = {}
    for ema in (0.0, 0.5):
        saved = tmp_path / f"{ema}.npz"
        compare_on_kit_folds(dataset, Setup(copies=1, ema=ema), folds=2, epochs=2, probabilities_out=saved)
        scored[ema] = np.load(saved)["probabilities"]
    np.testing.assert_allclose(scored[0.5].sum(axis=1), 1.0, rtol=1e-4)
    assert not np.allclose(scored[0.0], scored[0.5])  # the same seed, other weights


def test_per_source_figures_average_over_the_folds_that_hold_the_source() -> None:
    from drumcat.model.train.train import seed_summary

    def run(accuracy: float, sources: dict[str, float]) -> dict:
        level = {"accuracy": accuracy, "macro_f1": accuracy, "ece": 0.0}
        return {"fine": level, "core": level,
                "per_source": {"sources": {name: {"accuracy": value} for name, value in sources.items()}}}

    summary = seed_summary({1: run(0.9, {"a": 0.9}), 2: run(0.7, {"a": 0.5, "b": 0.8})})
    assert summary["per_source_core_accuracy"] == {"a": 0.7, "b": 0.8}


@pytest.mark.parametrize("pooling", POOLINGS)
def test_an_ensemble_averages_its_members_logits_behind_one_dense_softmax(pooling: str) -> None:
    import keras

    members = [build_model(34, pooling=pooling) for _ in range(2)]
    for index, member in enumerate(members):  # distinct weights, as two seeds give
        rng = np.random.default_rng(index)
        member.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in member.get_weights()])
    ensemble = ensemble_of(members, 34, pooling=pooling)
    x = np.random.default_rng(9).normal(0, 1, (5, *RECIPE.input_shape)).astype(np.float32)
    log_members = [np.log(m.predict(x, verbose=0).astype(np.float64)) for m in members]
    expected = np.exp(np.mean(log_members, axis=0))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-3, atol=1e-6)
    last = ensemble.layers[-1]  # what `drumcat adapt` retrains: a Dense softmax over the joined embeddings
    assert isinstance(last, keras.layers.Dense) and ensemble.get_layer("embedding").output.shape[-1] == 256
    assert member_seeds(3, 2) == [3, 1003]


def test_train_ships_an_ensemble_with_a_quantized_export_and_its_own_figures(tmp_path: Path) -> None:
    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "models" / "pair.keras"
    card = train(dataset, out, epochs=2, copies=1, members=2, lite_weights="int8")

    assert card.training["member_seeds"] == [1, 1001] and len(card.training["epochs_run"]) == 2
    assert card.training["litert_weights"] == "int8"
    bundle = load_bundle(out)  # runs the int8 export, checked against the card
    clips = load_split(dataset, "test", card.labels)
    probabilities, embeddings = bundle.predict(features_of(clips.clips))
    assert embeddings.shape == (18, 256)
    lite = card.metrics["test_litert"]  # measured on the export itself, beside the Keras model's figures
    again = evaluate_split(probabilities, clips.labels, card.labels)["core"]
    assert lite["weights"] == "int8" and lite["core_accuracy"] == again["accuracy"]
    assert 0 <= lite["same_core_folder_as_keras"] <= 1
    assert (out.with_suffix(".tflite").stat().st_size < 0.5 * out.stat().st_size)  # int8: a quarter of float32


def test_a_32_khz_dataset_trains_a_model_whose_card_hears_up_to_16_khz(tmp_path: Path) -> None:
    """The feature recipe follows the dataset's clip rate, the card carries it, and the saved bundle scores
    the test clips as the card says."""
    from drumcat.model.train.train import RECIPES_BY_RATE, recipe_for

    dataset = small_dataset(tmp_path / "dataset", rate=32_000)
    assert recipe_for(dataset) == RECIPES_BY_RATE[32_000] and recipe_for(small_dataset(tmp_path / "old")) == RECIPE
    out = tmp_path / "models" / "wide.keras"
    card = train(dataset, out, epochs=1, copies=1, refit=False)
    bundle = load_bundle(out)
    assert bundle.card.features.sample_rate == 32_000 and bundle.card.features.input_shape == (64, 84, 1)
    clips = load_split(dataset, "test", card.labels, rate=32_000)
    again = evaluate_split(bundle.predict(features_as_read(clips.clips, bundle.card.features))[0], clips.labels,
                           card.labels)
    assert again["core"]["accuracy"] == card.metrics["test"]["core"]["accuracy"]


def test_a_network_pooled_over_time_only_keeps_a_row_per_band_and_ships_like_the_default(tmp_path: Path) -> None:
    """`--pooling time`: the last maps' mean and maximum per band row (4 rows for 64 bands) reach the
    embedding, the card says so, and the saved model loads in safe mode and exports to LiteRT with the
    figures the card gives."""
    model = build_model(34, pooling="time")
    assert model.get_layer("pool").output.shape[-1] == 2 * 4 * WIDTHS[3]
    assert build_model(34).get_layer("pool").output.shape[-1] == 2 * WIDTHS[3]
    assert_it_ships_like_the_default(tmp_path, "pooled over time only", pooling="time")


def test_a_band_centered_input_view_ignores_a_per_band_coloring_and_ships_like_the_default(tmp_path: Path) -> None:
    """`--input-view band-centered`: the second channel is each band minus its mean over frames, so an EQ (a
    constant added to each band of the log-mel patch) leaves it unchanged while the first channel moves; the
    saved model loads in safe mode and exports to LiteRT with the figures the card gives."""
    import keras

    model = build_model(34, input_view="band-centered")
    views = keras.Model(model.input, model.get_layer("input_views").output)
    rng = np.random.default_rng(0)
    patch = rng.normal(size=(2, *RECIPE.input_shape)).astype(np.float32)
    coloring = rng.normal(scale=6.0, size=(1, RECIPE.input_shape[0], 1, 1)).astype(np.float32)
    plain, colored = np.asarray(views(patch)), np.asarray(views(patch + coloring))
    np.testing.assert_allclose(plain[..., 1], colored[..., 1], atol=1e-4)
    np.testing.assert_allclose(plain[..., 0] + coloring[..., 0], colored[..., 0], atol=1e-4)
    assert_it_ships_like_the_default(tmp_path, "each band minus its mean over frames", input_view="band-centered")


def assert_it_ships_like_the_default(tmp_path: Path, described: str, **option: str) -> None:
    """A model trained with a recipe `option` says so in its card's architecture, loads in safe mode and
    scores through its LiteRT export exactly what the card gives."""
    dataset = small_dataset(tmp_path / "dataset")
    out = tmp_path / "models" / "option.keras"
    card = train(dataset, out, epochs=1, copies=1, refit=False, **option)
    assert described in card.training["architecture"]
    bundle = load_bundle(out)
    clips = load_split(dataset, "test", card.labels)
    again = evaluate_split(bundle.predict(features_of(clips.clips))[0], clips.labels, card.labels)
    assert again["core"]["accuracy"] == card.metrics["test_litert"]["core_accuracy"]


def test_a_wider_network_has_the_widths_asked_for_and_ships_like_the_default(tmp_path: Path) -> None:
    """`--widths` (run 51's capacity question): each convolution gets the filters asked for, and the model
    ships as the default does."""
    from drumcat.model.train.train import Setup

    wide = Setup(widths=(8, 16, 32, 40)).model(34)
    assert [wide.get_layer(f"conv{k}").filters for k in range(4)] == [8, 16, 32, 40]
    assert_it_ships_like_the_default(tmp_path, "convolution widths [8, 16, 32, 40]", widths=(8, 16, 32, 40))


def test_every_rate_a_dataset_can_be_built_at_has_a_feature_recipe_at_that_rate() -> None:
    from drumcat.model.train.dataset import CLIP_RATES
    from drumcat.model.train.train import RECIPES_BY_RATE

    assert set(CLIP_RATES) == set(RECIPES_BY_RATE)
    assert all(recipe.sample_rate == rate for rate, recipe in RECIPES_BY_RATE.items())


def test_the_44_khz_recipe_keeps_the_32_khz_bands_at_the_22_khz_cost() -> None:
    """Its mel bands end where the 32 kHz recipe's do (16 kHz), and its patch has as many frames from an
    FFT of the same size as the 22.05 kHz recipe's, so only the resampling it saves changes the cost."""
    from drumcat.audio.features import mel_basis
    from drumcat.model.train.train import RECIPES_BY_RATE

    at_44, at_32, at_22 = RECIPES_BY_RATE[44_100], RECIPES_BY_RATE[32_000], RECIPES_BY_RATE[22_050]
    top_hz = [np.flatnonzero(mel_basis(r)[-1]).max() * r.sample_rate / r.n_fft for r in (at_44, at_32)]
    assert abs(top_hz[0] - top_hz[1]) < 2 * at_44.sample_rate / at_44.n_fft
    assert at_44.input_shape == at_22.input_shape and at_44.n_fft == at_22.n_fft


def test_drumcat_train_refuses_a_dataset_at_a_rate_it_has_no_recipe_for_in_one_line(tmp_path: Path) -> None:
    from tests.helpers import drumcat

    dataset = small_dataset(tmp_path / "dataset", rate=48_000)
    result = drumcat("train", "--dataset", str(dataset), "--validation-only", cwd=tmp_path, check=False)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "holds clips at 48000 Hz" in result.stderr and "--rate" in result.stderr


def test_a_named_recipe_trains_on_a_dataset_at_its_rate_and_is_refused_at_another_in_one_line(
        tmp_path: Path) -> None:
    """`train --recipe shared-grid`: the card carries that recipe (a 30 ms window, 10 ms hop, features at a
    file's own rate), and its window and hop stay whole at 44.1 and 48 kHz, so the FFT bins stay where
    they are; a dataset at another rate is refused before anything trains."""
    from drumcat.model.train.train import NAMED_RECIPES
    from tests.helpers import drumcat

    for named in (r for r in NAMED_RECIPES.values() if r.native_rates):  # every shared grid stays whole
        for rate in (44_100, 48_000):
            at_rate = named.at_rate(rate)
            assert at_rate.window_length == at_rate.n_fft
            assert at_rate.sample_rate / at_rate.n_fft == named.sample_rate / named.n_fft
    grid = NAMED_RECIPES["shared-grid"]
    dataset = small_dataset(tmp_path / "dataset", rate=32_000)
    out = tmp_path / "models" / "grid.keras"
    train(dataset, out, epochs=1, copies=1, refit=False, recipe_name="shared-grid")
    card = load_bundle(out).card
    assert card.features == grid and card.features.input_shape == (64, 101, 1) and card.features.native_rates
    result = drumcat("train", "--dataset", str(small_dataset(tmp_path / "old")), "--recipe", "shared-grid",
                     "--validation-only", cwd=tmp_path, check=False)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "at 32000 Hz" in result.stderr and "22050 Hz" in result.stderr


def test_a_shared_recording_is_found_in_clips_at_32_khz_too() -> None:
    from drumcat.audio.files import resample

    crash = render("Crash", seed=1)
    clips = [Clip(resample(0.5 * crash, 22_050, 32_000), "Crash", "hydrogen-drumkits",
                  "hydrogen:The Black Pearl 1.0", "train copy"),
             Clip(resample(crash, 22_050, 32_000), "Crash", "avldrums.lv2-soundfont", "avldrums:Red_Zeppelin_4_LV2",
                  "test copy")]
    kept, lost = without_shared_recordings(clips, rate=32_000)
    assert [clip.origin for clip in kept] == ["test copy"] and lost == {"hydrogen:The Black Pearl 1.0": 1}


def _fold_file(path: Path, kits: list[str], folds: list[np.ndarray]) -> Path:
    """What `--fold-probabilities` writes, as far as `folds_of_earlier_run` reads it."""
    fold = np.zeros(len(kits), dtype=int)
    for number, rows in enumerate(folds, start=1):
        fold[rows] = number
    np.savez_compressed(path, kits=np.array(kits), fold=fold)
    return path


def test_a_dataset_whose_kits_changed_size_is_held_out_in_the_earlier_runs_folds(tmp_path: Path) -> None:
    """kit_folds places kits largest first, so two more clips in one kit move others; the earlier run's
    file keeps every kit, and the spread noise bursts, where they were."""
    from drumcat.model.train.train import folds_of_earlier_run, kit_folds

    def kits_of(sizes: dict[str, int]) -> list[str]:
        return [kit for kit, n in sizes.items() for _ in range(n)]

    before = kits_of({"a": 9, "b": 7, "c": 5, "d": 5, "e": 3, "f": 1, "synth:train": 6})
    after = kits_of({"a": 9, "b": 7, "c": 5, "d": 7, "e": 3, "f": 1, "synth:train": 5})

    def fold_of_kit(kits: list[str], folds: list[np.ndarray]) -> dict[str, int]:
        return {kits[row]: number for number, rows in enumerate(folds) for row in rows if kits[row] != "synth:train"}

    earlier = _fold_file(tmp_path / "earlier.npz", before, kit_folds(before, 3))
    assert fold_of_kit(after, kit_folds(after, 3)) != fold_of_kit(before, kit_folds(before, 3))  # reshuffled
    reused = folds_of_earlier_run(earlier, after)
    assert fold_of_kit(after, reused) == fold_of_kit(before, kit_folds(before, 3))
    assert sorted(np.concatenate(reused).tolist()) == list(range(len(after)))
    noise = [[before[row] for row in rows].count("synth:train") for rows in kit_folds(before, 3)]
    assert [[after[row] for row in rows].count("synth:train") for rows in reused] <= noise  # one fewer, same spread


def test_an_earlier_runs_folds_refuse_a_kit_they_never_held_out(tmp_path: Path) -> None:
    import pytest

    from drumcat.errors import DrumcatError
    from drumcat.model.train.train import folds_of_earlier_run

    earlier = _fold_file(tmp_path / "earlier.npz", ["a", "a", "b"], [np.array([0, 1]), np.array([2])])
    with pytest.raises(DrumcatError, match="held out no clip of kit 'c'"):
        folds_of_earlier_run(earlier, ["a", "b", "c"])


def test_kit_fold_cross_validation_on_an_earlier_runs_folds(tmp_path: Path) -> None:
    from drumcat.model.train.train import Setup, compare_on_kit_folds

    dataset = small_dataset(tmp_path / "dataset")
    rows = list(csv.DictReader((dataset / "manifest.csv").open()))
    kits = [row["kit"] for row in rows if row["split"] != "test"]  # training kits first, as the run reads them
    flipped = _fold_file(tmp_path / "earlier.npz", kits, [np.flatnonzero(np.array(kits) == "kit-c"),
                                                          np.flatnonzero(np.array(kits) != "kit-c")])
    saved = tmp_path / "folds.npz"
    compare_on_kit_folds(dataset, Setup(copies=1), folds=2, epochs=1, probabilities_out=saved, like=flipped)
    kept = np.load(saved)
    assert set(kept["kits"][kept["fold"] == 1].tolist()) == {"kit-c"}


def test_the_analog_cymbals_bench_measures_how_long_a_sound_rings_and_how_bright_it_starts() -> None:
    from bench.analog_cymbals import RATE, decay_and_centroid

    t = np.arange(RATE) / RATE
    noise = np.random.default_rng(0).standard_normal(RATE)
    short, long = decay_and_centroid(noise * np.exp(-t / 0.02)), decay_and_centroid(noise * np.exp(-t / 0.2))
    assert 0.05 < short[0] < 0.1 and 0.6 < long[0] < 0.8  # -30 dB after 3.45 time constants
    assert decay_and_centroid(np.sin(2 * np.pi * 500 * t) * np.exp(-t / 0.2))[1] < 1000 < long[1]


def test_the_kit_context_bench_ranks_a_sound_among_its_own_kit_only() -> None:
    """The same sound is the longest-ringing of one kit and the shortest of another: its context says so,
    and a kit of one sound has no rank to give (0.5)."""
    from bench.kit_context import kit_context, percentile_within

    kits = np.array(["a", "a", "a", "b", "b", "c"])
    decay = np.array([[0.2], [0.5], [0.9], [0.9], [2.0], [0.9]])
    assert percentile_within(decay, kits)[:, 0].tolist() == [0.0, 0.5, 1.0, 0.0, 1.0, 0.5]
    core_sums = np.tile([[0.7, 0.3]], (6, 1))
    core_sums[0] = [0.1, 0.9]
    context = kit_context(core_sums, decay, kits)
    assert np.allclose(context[:3, :2], [0.5, 0.5])  # kit a's mean core sums, the same for each of its sounds
    assert np.allclose(context[3:5, :2], [0.7, 0.3])
    assert context[2, -2] > 0 > context[3, -2]  # decay's z-score: 0.9 rings long in kit a, short in kit b
    assert np.allclose(context[:, -1], np.log([3, 3, 3, 2, 2, 1]))

"""bench/label_audit.py: a folder whose table gave every clip the wrong label stands out as a group."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.label_audit import flagged_clips, origin_group, read_origins, suspicious_groups
from drumcat.taxonomy import FINE_CLASSES

REPO = Path(__file__).resolve().parent.parent
LABELS = ["Kick", "Snare", "Hihat", "Tom", "Crash", "Ride", "Conga"]


def out_of_fold_run(tmp_path: Path) -> tuple[Path, Path]:
    """Eight kits whose witness agrees with their labels (a little noise), and a kit folder `hh` labeled
    all Hihat whose four clips the witness hears as kicks; as the npz and manifest the real tools write."""
    rng = np.random.default_rng(0)
    rows, vectors = [], []

    def add(kit: str, folder: str, label: str, heard: str, number: int, sure: float) -> None:
        vector = rng.dirichlet(np.full(len(FINE_CLASSES), 0.3)) * (1 - sure)
        vector[FINE_CLASSES.index(heard)] += sure
        vectors.append(vector / vector.sum())
        rows.append({"path": f"clips/{len(rows):05d}_{label}.wav", "label": label, "kit": kit,
                     "origin": f"{folder}/{number:03d}_{heard.lower()}.wav"})

    for machine in range(8):
        for label in LABELS:
            for number in range(4):
                add(f"machine:M{machine}", f"M{machine}/m{machine}-{label.lower()}", label, label, number,
                    rng.uniform(0.6, 0.9))
    for number in range(4):
        add("machine:hh", "hh", "Hihat", "Kick", number, 0.95)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    with (dataset / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "source", "kit", "split", "origin"])
        writer.writeheader()
        writer.writerows({**row, "source": "test", "split": "train"} for row in rows)
    run = tmp_path / "run.npz"
    np.savez(run, probabilities=np.array(vectors, dtype=np.float32), fold=np.arange(len(rows)) % 5,
             classes=np.array(FINE_CLASSES), labels=np.array([r["label"] for r in rows]),
             kits=np.array([r["kit"] for r in rows]), sources=np.array(["test"] * len(rows)),
             paths=np.array([r["path"] for r in rows]))
    return run, dataset


def test_a_folder_labeled_wrong_as_a_whole_is_the_one_group_flagged(tmp_path: Path) -> None:
    run, dataset = out_of_fold_run(tmp_path)
    runs, origins = [dict(np.load(run))], read_origins(dataset)
    flags, judged = flagged_clips(runs, origins)
    assert judged == 8 * len(LABELS) * 4 + 4
    assert {flag.origin.split("/")[0] for flag in flags} == {"hh"}
    assert all(flag.predicted == "Kick" and flag.label == "Hihat" for flag in flags) and len(flags) == 4
    groups = suspicious_groups(flags, runs, origins)
    assert [(key, count, size) for key, count, size, _ in groups] == [(("machine:hh", "hh", "Hihat"), 4, 4)]


def test_what_one_table_row_labels_is_a_folder_a_font_key_or_an_instrument() -> None:
    assert origin_group("RolandTR808/rolandtr808-bd/BD2550.WAV") == "RolandTR808/rolandtr808-bd"
    assert origin_group("reversed hh/005_hh3kick1.wav") == "hh"
    assert origin_group("TimGM6mb preset 25 key 42 v127") == "TimGM6mb preset 25 key 42"
    assert origin_group("Snare 2: EE_Snare_2.flac") == "Snare 2"


def test_runs_of_another_dataset_are_refused_in_one_line(tmp_path: Path) -> None:
    run, dataset = out_of_fold_run(tmp_path)
    (dataset / "manifest.csv").write_text("path,label,source,kit,split,origin\n")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "label_audit.py"), str(run), "--dataset", str(dataset)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "pass the dataset the runs used" in done.stderr

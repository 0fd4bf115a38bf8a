"""Find training labels to review, from the kit folds' out-of-fold probabilities (confident learning).

A clip's label comes from a reviewed table (a folder suffix, a file or instrument name, a soundfont key),
and a table can be wrong for a whole folder: Dirt-Samples' `hh` is a kit of the `hh27` series, not a folder
of hats, and was read as all Hihat until run 66. A model that never saw a clip's kit (`drumcat train
--validation-only --kit-folds 5 --fold-probabilities RUN.npz`) is an independent witness of its label.
cleanlab's `find_label_issues` flags the clips whose label the witness contradicts by more than each class's
own confident threshold allows (Northcutt et al., confident learning), on the core folders (six + misc), with
several seeds' files averaged as one ensemble. A flag is a reason to listen and to read the file's name and
the font's own sample names, never a relabel: most flags are a drum machine's tom that sounds like a conga.

This prints the groups of clips that share a kit, a source folder (or soundfont key, or Hydrogen instrument)
and a label where at least half are flagged (where a table goes wrong), then the most confident single flags.

    python bench/label_audit.py build/runs/run64/A.npz [build/runs/run65/s1001.npz ...]
        [--dataset build/dataset] [--top 30]

The files must be of the dataset given (the clips' paths are looked up in its manifest). Nothing here reads
the test kits: the kit folds hold training and validation kits only.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fold_decisions import geometric_mean  # noqa: E402
from drumcat.taxonomy import canonical, core_groups, core_membership  # noqa: E402

# A group is worth a look when at least this share of its clips is flagged.
GROUP_SHARE = 0.5


@dataclass(frozen=True)
class Flag:
    label: str  # the fine label the table gave
    predicted: str  # the core folder the witness picks
    top_fine: str
    confidence: float  # the witness's probability of the given core folder
    kit: str
    origin: str


def origin_group(origin: str) -> str:
    """What one table row labels: a file's folder, a soundfont preset's key, a Hydrogen instrument."""
    origin = origin.removeprefix("reversed ")
    if re.search(r" key \d+ v\d+$", origin):
        return re.sub(r" v\d+$", "", origin)
    if "/" in origin:
        return origin.rsplit("/", 1)[0]
    return origin.split(": ", 1)[0]


def flagged_clips(runs: list[dict[str, np.ndarray]], origins: dict[str, str]) -> tuple[list[Flag], int]:
    """The clips whose label the out-of-fold ensemble contradicts; and how many clips were judged."""
    first = runs[0]
    classes = [str(c) for c in first["classes"]]
    ensemble = geometric_mean([run["probabilities"] for run in runs])
    core, folders = ensemble @ core_membership(classes), core_groups(classes)  # folders name core's columns
    given = np.array([folders.index(canonical(str(label))) for label in first["labels"]])
    issues = find_label_issues(given, core, filter_by="prune_by_noise_rate",
                               return_indices_ranked_by="self_confidence", n_jobs=1)
    flags = [Flag(str(first["labels"][i]), folders[int(core[i].argmax())], classes[int(ensemble[i].argmax())],
                  float(core[i, given[i]]), str(first["kits"][i]), origins[str(first["paths"][i])])
             for i in issues]
    return flags, len(given)


def suspicious_groups(flags: list[Flag], runs: list[dict[str, np.ndarray]], origins: dict[str, str]
                      ) -> list[tuple[tuple[str, str, str], int, int, Counter]]:
    """(kit, group, label), flagged, clips, flagged clips' folders: groups at least GROUP_SHARE flagged."""
    first = runs[0]
    sizes: Counter = Counter()
    for kit, label, path in zip(first["kits"], first["labels"], first["paths"], strict=True):
        sizes[(str(kit), origin_group(origins[str(path)]), str(label))] += 1
    flagged: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for flag in flags:
        flagged[(flag.kit, origin_group(flag.origin), flag.label)][flag.predicted] += 1
    groups = [(key, sum(found.values()), sizes[key], found) for key, found in flagged.items()
              if sizes[key] >= 2 and sum(found.values()) >= GROUP_SHARE * sizes[key]]
    return sorted(groups, key=lambda group: (-group[1], group[0]))


def read_origins(dataset: Path) -> dict[str, str]:
    with (dataset / "manifest.csv").open(newline="") as handle:
        return {row["path"]: row["origin"] for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="--fold-probabilities files on the same folds")
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"), help="the dataset they were made on")
    parser.add_argument("--top", type=int, default=30, help="single flags to print")
    args = parser.parse_args()
    runs = [dict(np.load(path)) for path in args.runs]
    for other in runs[1:]:
        if not np.array_equal(other["paths"], runs[0]["paths"]) or not np.array_equal(other["fold"], runs[0]["fold"]):
            sys.exit("label_audit: the files hold other clips or folds; make them with --folds-like on one dataset")
    origins = read_origins(args.dataset)
    missing = [str(path) for path in runs[0]["paths"] if str(path) not in origins]
    if missing:
        sys.exit(f"label_audit: {missing[0]} is not in {args.dataset}/manifest.csv: pass the dataset the runs used")
    flags, judged = flagged_clips(runs, origins)
    print(f"{len(flags)} of {judged} clips flagged ({len(runs)} file(s) averaged)")
    print(f"\ngroups with at least {GROUP_SHARE:.0%} of their clips flagged (kit, folder or key, label):")
    for (kit, group, label), count, size, found in suspicious_groups(flags, runs, origins):
        folders = ", ".join(f"{name} {n}" for name, n in found.most_common())
        print(f"  {count:3d}/{size:<3d} {label:<10} {kit:<30} {group}  -> {folders}")
    print(f"\nthe {min(args.top, len(flags))} most confident flags (the witness's probability of the label):")
    for flag in flags[:args.top]:
        print(f"  {flag.confidence:.3f} {flag.label:<10} -> {flag.predicted:<6} ({flag.top_fine:<10}) "
              f"{flag.kit:<30} {flag.origin}")


if __name__ == "__main__":
    main()

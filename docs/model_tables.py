"""The README's tables of the shipped model's held-out figures, written from its card
(models/drumcat-v2.json), so the README cannot show one model's figures while another is shipped.

    python docs/model_tables.py          # rewrite every marked table in README.md
    python docs/model_tables.py --check  # exit 1 naming the stale tables (tests/test_docs.py runs this)

A table is marked by a comment line `<!-- model-table: NAME -->` right before it. The card is the single
source of truth; the README's tables of earlier models are history and stay as they were written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CARD = REPO / "models" / "drumcat-v2.json"
_MARKER = re.compile(r"^<!-- model-table: ([a-z_]+) -->\n(?:\|.*\n)+", re.M)


def _spread(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def held_out_table(card: dict) -> list[str]:
    """Mean of seeds, core and fine; the shipped seed; its LiteRT export (what `infer` runs)."""
    version, metrics = card["version"], card["metrics"]
    seeds, test, litert = metrics["seeds"], metrics["test"], metrics["test_litert"]
    per_seed = ", ".join(f"{value:.3f}" for value in seeds["core_accuracy"]["per_seed"])
    of_seeds = f"mean of {len(seeds['seeds'])} seeds{_seeds_note(seeds)}"
    core, fine = test["core"], test["fine"]
    return [
        "| | accuracy | macro-F1 | ECE (after temperature scaling) |",
        "|---|---|---|---|",
        f"| **{version}**, core-6 + misc, {of_seeds} | **{_spread(seeds['core_accuracy'])}** ({per_seed}) "
        f"| **{_spread(seeds['core_macro_f1'])}** | {_spread(seeds['core_ece'])} |",
        f"| **{version}**, fine-34, {of_seeds} | {_spread(seeds['fine_accuracy'])} "
        f"| {_spread(seeds['fine_macro_f1'])} | {_spread(seeds['fine_ece'])} |",
        f"| **{version} shipped (seed {seeds['seeds'][0]})**, core / fine | **{core['accuracy']:.3f}** / "
        f"{fine['accuracy']:.3f} | **{core['macro_f1']:.3f}** / {fine['macro_f1']:.3f} | "
        f"{core['ece']:.3f} / {fine['ece']:.3f} |",
        f"| {version} shipped, its {litert['weights']} LiteRT export (what `infer` runs), core; "
        f"{litert['same_core_folder_as_keras']:.1%} of the clips in the same core folder | "
        f"{litert['core_accuracy']:.3f} | {litert['core_macro_f1']:.3f} | |",
        f"| {version} shipped, 95% interval over the {core['kit_interval']['kits']} test kits (bootstrap) | "
        f"{_interval(core['kit_interval']['accuracy'])} | {_interval(core['kit_interval']['macro_f1'])} | |",
    ]


def _seeds_note(seeds: dict) -> str:
    """How the card's seed figures were measured, when the card says (" (...)"), else nothing."""
    return f" ({seeds['note']})" if seeds.get("note") else ""


def _interval(bounds: list[float]) -> str:
    return f"{bounds[0]:.3f}–{bounds[1]:.3f}"


def per_source_table(card: dict) -> list[str]:
    """Core accuracy and macro-F1 per test source, and the mean over sources."""
    metrics = card["metrics"]
    sources = metrics["test"]["per_source"]
    seed_means = metrics["seeds"].get("per_source_core_accuracy", {})
    note = _seeds_note(metrics["seeds"])
    rows = [f"| source | test clips | shipped seed: accuracy / macro-F1 | mean of seeds{note}: accuracy |",
            "|---|---|---|---|"]
    for name, figures in sorted(sources["sources"].items(), key=lambda item: -item[1]["clips"]):
        seed_mean = f"{seed_means[name]:.3f}" if name in seed_means else ""
        rows.append(f"| {name} | {figures['clips']} | {figures['accuracy']:.3f} / {figures['macro_f1']:.3f} | "
                    f"{seed_mean} |")
    mean = sources["mean_over_sources"]
    rows.append(f"| **mean over sources** | | **{mean['accuracy']:.3f} / {mean['macro_f1']:.3f}** | |")
    return rows


def per_class_table(card: dict) -> list[str]:
    """Precision, recall, F1 and support per core folder (the shipped seed)."""
    rows = ["| core class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for figures in card["metrics"]["test"]["core"]["per_class"]:
        rows.append(f"| {figures['class']} | {figures['precision']:.2f} | {figures['recall']:.2f} | "
                    f"{figures['f1']:.2f} | {figures['support']} |")
    return rows


TABLES: dict[str, Callable[[dict], list[str]]] = {
    "held_out": held_out_table, "per_source": per_source_table, "per_class": per_class_table,
}


def rewritten(readme: str, card: dict) -> tuple[str, list[str]]:
    """The README with every marked table written from the card, and the names of those that changed."""
    stale = []

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise SystemExit(f"README.md: unknown model table {name!r}; the known ones are {sorted(TABLES)}")
        text = f"<!-- model-table: {name} -->\n" + "\n".join(TABLES[name](card)) + "\n"
        if text != match.group(0):
            stale.append(name)
        return text

    return _MARKER.sub(replace, readme), stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is stale; write nothing")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    text, stale = rewritten(readme, json.loads(CARD.read_text(encoding="utf-8")))
    if args.check:
        if stale:
            print(f"README.md: stale model tables {stale}; run python docs/model_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text, encoding="utf-8")
    print(f"rewrote {stale or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

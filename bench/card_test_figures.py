"""A card's test figures measured again with its networks unchanged, under a recipe that changed only how
files reach them (run 58: `lead_seconds`), the way `drumcat train` measures them (`train.test_figures` on
`features_as_read`), so every figure in the card is what `infer` would score.

    python bench/card_test_figures.py [--model models/drumcat-v2.keras] [--lead-seconds 0.01]
        [--seed-models SEED2.keras,SEED3.keras] [--version 3.5.2] [--write]

The shipped model counts as the first seed; `--seed-models` are the other seeds' models, retrained by the
same command (each printed with its own card's recipe first: the check that it reproduces the card's
per-seed figure). Prints the figures; `--write` stores them in the card (the test, its LiteRT export's and
the seeds' summary, or with no other seed's model a note on the seed figures kept; the validation
figures are the selection model's and stay as trained).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drumcat.model.bundle import ModelBundle, card_path_for, load_bundle  # noqa: E402
from drumcat.model.train.train import (  # noqa: E402
    Split,
    features_as_read,
    kit_interval_on_test,
    litert_on_test,
    load_split,
    seed_summary,
    test_figures,
)


def measured(bundle: ModelBundle, x_test: np.ndarray, split: Split) -> tuple[dict[str, Any], list[str]]:
    return test_figures(bundle.keras_model, bundle.card.temperature, x_test, split, bundle.card.labels)


def headline(test: dict[str, Any]) -> str:
    core, fine = test["core"], test["fine"]
    return (f"core {core['accuracy']:.4f} / {core['macro_f1']:.4f} (ECE {core['ece']:.4f}), "
            f"fine {fine['accuracy']:.4f} / {fine['macro_f1']:.4f} (ECE {fine['ece']:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/drumcat-v2.keras"))
    parser.add_argument("--dataset", type=Path, default=Path("build/dataset"))
    parser.add_argument("--lead-seconds", type=float, default=None, help="default: the card's")
    parser.add_argument("--seed-models", default="", help="comma-separated .keras files of the other seeds")
    parser.add_argument("--version", default=None, help="the card's new version (with --write)")
    parser.add_argument("--seeds-note", default=None,
                        help="without --seed-models: how the card's seed figures were measured, for its tables")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    bundle = load_bundle(args.model)
    card = bundle.card
    recipe = card.features if args.lead_seconds is None else dataclasses.replace(
        card.features, lead_seconds=args.lead_seconds)
    recipe.validate()
    split = load_split(args.dataset, "test", card.labels, recipe.sample_rate)
    seeds = [bundle, *[load_bundle(Path(p)) for p in args.seed_models.split(",") if p]]
    x_test = features_as_read(split.clips, recipe)  # once: every seed model and the LiteRT export read them
    runs = {}
    for number, seed in enumerate(seeds, start=1):
        if seed.card.features != recipe:
            own = headline(measured(seed, features_as_read(split.clips, seed.card.features), split)[0])
            print(f"seed model {number} ({seed.path}), its own card's recipe: {own}")
        runs[number] = measured(seed, x_test, split)
        print(f"seed model {number} ({seed.path}), lead {recipe.lead_seconds:g} s: {headline(runs[number][0])}")
    summary = {**seed_summary({n: test for n, (test, _) in runs.items()}),
               "core_kit_interval": kit_interval_on_test(split, [p for _, p in runs.values()], card.labels)}
    for key in ("core_accuracy", "core_macro_f1", "fine_accuracy", "fine_macro_f1", "core_ece", "fine_ece"):
        print(f"{key}: {summary[key]['mean']:.4f} ± {summary[key]['std']:.4f} {summary[key]['per_seed']}")
    if not args.write:
        return
    shipped, predictions = runs[1]
    shipped["core"]["kit_interval"] = kit_interval_on_test(split, [predictions], card.labels)
    card.features = recipe
    card.version = args.version or card.version
    card.metrics["test"] = shipped
    if len(seeds) > 1:
        card.metrics["seeds"] = {**summary, "seeds": card.metrics["seeds"]["seeds"]}
    elif args.seeds_note:  # the other seeds' networks are not at hand: their figures stay, and say so
        card.metrics["seeds"]["note"] = args.seeds_note
    card.metrics["test_litert"] = litert_on_test(args.model, x_test, split, card, predictions)
    card_path_for(args.model).write_text(card.to_json(), encoding="utf-8")
    print(f"wrote {card_path_for(args.model)}")


if __name__ == "__main__":
    main()

"""The command line: parse arguments, call the library, print. No logic of its own lives here."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drumcat import console
from drumcat.config import Config, load_config
from drumcat.errors import DrumcatError
from drumcat.storage.catalog import Catalog

if TYPE_CHECKING:  # TensorFlow loads only when a command needs a model
    from drumcat.model.bundle import ModelBundle
    from drumcat.storage.rules import RuleChanges

app = typer.Typer(
    help="Catalog, classify and organize drum sample archives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class State:
    config: Config
    catalog_override: Path | None = None

    @property
    def catalog_path(self) -> Path:
        return self.catalog_override or self.config.catalog_path

    def open_catalog(self, *, create: bool = False) -> Catalog:
        """The catalog, migrated. Only `scan` creates one: a mistyped --catalog is an error, not an empty
        catalog (an empty catalog would materialize an empty tree)."""
        return Catalog(self.catalog_path, create=create)

    def rule_changes(self, flags: RuleChanges | None = None) -> RuleChanges:
        """The rules this command applies on top of the catalog's: drumcat.toml's, then the flags'."""
        from drumcat.storage.rules import RuleChanges, config_rule_changes

        return config_rule_changes(self.config).then(flags or RuleChanges())

    def canonical_map(self) -> dict[str, str] | None:
        """The catalog's fine -> core mapping (with drumcat.toml's on top) when there is a catalog, so
        evaluate collapses labels as the views do; None (the built-in mapping) without one."""
        if not self.catalog_path.exists():
            return None
        from drumcat.storage.rules import canonical_map, rules_for_this_command

        with rules_for_this_command(self.open_catalog(), self.rule_changes()) as conn:
            return canonical_map(conn)

    def model_path(self, override: Path | None) -> Path | None:
        if override is not None:
            return override
        return self.config.resolve(self.config.model.path) if self.config.model.path else None

    def load_model(self, override: Path | None, trust: bool, *, background: bool = False) -> ModelBundle:
        from drumcat.model.bundle import load_bundle

        return load_bundle(self.model_path(override), trust_unsafe=trust or self.config.model.trust_unsafe,
                           background=background)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Settings file (default: ./drumcat.toml if present).")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", "-d", help="Catalog file; overrides catalog.path.")
    ] = None,
) -> None:
    ctx.obj = State(load_config(config), catalog)
    _STATE.append(ctx.obj)


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@app.command()
def scan(
    ctx: typer.Context,
    archives: Annotated[list[Path], typer.Argument(help="Top folders of sample archives.")],
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: scan.workers).")] = None,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Find audio files, hash their content and read their audio facts into the catalog."""
    from drumcat.commands.scan import scan as run_scan

    state: State = ctx.obj
    scan_config = state.config.scan
    if workers is not None:
        scan_config.workers = workers
    catalog = state.open_catalog(create=True)
    with console.progress_bar("scanning", quiet=quiet or json_output) as (set_total, advance):
        summary = run_scan(catalog, archives, scan_config, on_total=set_total, on_progress=advance)
    for skipped in summary.skipped_dirs:
        console.warn_line(f"skipped folder {skipped}")
    if json_output:
        console.print_json(summary.as_dict())
        return
    counts = {k: v for k, v in summary.as_dict().items() if k != "skipped_dirs"}
    console.out.print(console.table(f"scan of {len(archives)} root(s) into {catalog.path}", [counts]))
    if summary.failed:
        console.out.print(f"{summary.failed} file(s) could not be read; `drumcat stats` lists them.")


@app.command()
def stats(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Totals, formats, durations, duplicates, errors and (after infer) labels."""
    from drumcat.commands.stats import catalog_stats

    data = catalog_stats(ctx.obj.open_catalog(), ctx.obj.rule_changes())
    if json_output:
        console.print_json(data)
        return
    _print_stats(data)


def _print_stats(data: dict) -> None:
    totals = data["totals"]
    out = console.out
    out.print(f"[bold]catalog[/] {data['catalog']} (schema {data['schema_version']})")
    out.print(
        f"{totals['present']} files present ({totals['missing']} missing), {totals['unique_sounds']} unique "
        f"sounds, {totals['errors']} unreadable, {totals['bytes'] / 1e6:.1f} MB"
    )
    median = data["median_duration_s"]
    out.print(
        f"duration: {data['total_duration_s']:.1f} s in all, median "
        f"{'-' if median is None else f'{median:.3f}'} s; duplicate groups: {data['duplicate_groups']} "
        f"({data['duplicate_files']} extra files)"
    )
    out.print(console.table("files by format", data["by_format"]))
    out.print(console.table("files by sample rate", data["by_sample_rate"]))
    if data["errors"]:
        out.print(console.table("errors by kind", data["errors_by_kind"]))
        out.print(console.table("unreadable files", data["errors"], ["path", "error_kind", "error"]))
    if "labels" in data:
        out.print(f"active model: {data['active_model']}")
        out.print(console.table("labels", data["labels"]))
        out.print(console.table("confidence", [data["confidence"]]))



ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="A .keras model with its card (default: model.path or the shipped model)."),
]
TrustOption = Annotated[
    bool,
    typer.Option("--trust-model", help="Allow Keras unsafe deserialization (Lambda layers). Only your own models."),
]


@app.command()
def infer(
    ctx: typer.Context,
    model: ModelOption = None,
    batch_size: Annotated[int | None, typer.Option(help="Sounds per commit (default: model.batch_size).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: model.workers).")] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many sounds (try a model on a few).")] = None,
    use: Annotated[bool, typer.Option("--use", help="Make this the model the views classify with.")] = False,
    trust_model: TrustOption = False,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Classify every unique sound that has no result for the model yet. Safe to interrupt and rerun.

    Trying a model does not change what the trees show: the views switch only with --use (or for the
    catalog's first model), or later with `drumcat model use`."""
    from drumcat.commands.infer import infer as run_infer

    state: State = ctx.obj
    settings = state.config.model
    catalog = state.open_catalog()
    bundle = state.load_model(model, trust_model, background=True)  # loads while infer's workers start
    with console.progress_bar(f"inferring ({bundle.name})", quiet=quiet or json_output, unit="sounds",
                              lazy=True) as bar:  # infer reports its total once its workers run
        summary = run_infer(
            catalog, bundle, batch_size=settings.batch_size if batch_size is None else batch_size,
            workers=settings.workers if workers is None else workers, limit=limit, use=use,
            on_total=bar[0], on_progress=bar[1],
        )
    for error in summary.errors:
        console.warn_line(f"{error['path']}: {error['error']}")
    if json_output:
        console.print_json(summary.as_dict())
        return
    record = {k: summary.as_dict()[k] for k in ("model", "planned", "predicted", "failed", "already_done", "status")}
    console.out.print(console.table(f"inference run {summary.run_id}", [record]))
    if not summary.active:
        console.out.print(f"the views still classify with another model; `drumcat model use {bundle.name}` "
                          "switches them to this one")


model_app = typer.Typer(help="Models: add your own, list and choose the active one, show a card.",
                        no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("add")
def model_add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Your .keras model.")],
    labels: Annotated[
        Path | None,
        typer.Option(help="label_mapping.json: the class names in output order (default: taxonomy.label_mapping)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the file name).")] = None,
    feature: Annotated[str, typer.Option(
        help="Feature type: mfcc, logmel (dB) or pcen (librosa.pcen's defaults on the clip's mel power "
             "times 2**31).")] = "mfcc",
    sample_rate: Annotated[int, typer.Option(help="Sample rate the features were computed at.")] = 22_050,
    clip_seconds: Annotated[float, typer.Option(help="Clip length the model expects.")] = 1.0,
    n_mfcc: Annotated[int, typer.Option(help="MFCC coefficients (mfcc).")] = 40,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 128,
    n_fft: Annotated[int, typer.Option(help="FFT size.")] = 2048,
    hop_length: Annotated[int, typer.Option(help="Hop length in samples.")] = 512,
    fmin: Annotated[float, typer.Option(help="Lowest mel frequency.")] = 0.0,
    fmax: Annotated[float | None, typer.Option(help="Highest mel frequency (default: sample_rate / 2).")] = None,
    layout: Annotated[str, typer.Option(help="channels_last (bands, frames, 1) or frames_first (frames, bands).")]
    = "channels_last",
    peak_normalize: Annotated[bool, typer.Option(help="Peak-normalize clips before features.")] = False,
    start_at_onset: Annotated[bool, typer.Option(
        help="Cut each file where its sound starts (5 ms before 2% of its peak), if your training clips were.")]
    = False,
    force: Annotated[bool, typer.Option(help="Replace an existing card.")] = False,
    trust_model: TrustOption = False,
) -> None:
    """Write a card for your own model (the reference design's model1.keras + label_mapping.json)."""
    from drumcat.audio.features import FeatureRecipe
    from drumcat.model.bundle import add_model, card_path_for, lite_path_for
    from drumcat.taxonomy import read_label_mapping

    recipe = FeatureRecipe(
        sample_rate=sample_rate, clip_seconds=clip_seconds, feature_type=feature, n_fft=n_fft,
        hop_length=hop_length, n_mels=n_mels, n_mfcc=n_mfcc, fmin=fmin, fmax=fmax,
        peak_normalize=peak_normalize, layout=layout, start_at_onset=start_at_onset,
    )
    recipe.validate("feature options")
    config = ctx.obj.config
    if labels is None and not config.taxonomy.label_mapping:
        raise DrumcatError("model add: pass --labels label_mapping.json or set taxonomy.label_mapping in drumcat.toml")
    labels_path = labels or config.resolve(config.taxonomy.label_mapping)
    card = add_model(path, read_label_mapping(labels_path), recipe, name=name, trust_unsafe=trust_model,
                     overwrite=force)
    console.out.print(f"wrote {card_path_for(path)}: {card.name}, {len(card.labels)} labels, "
                      f"{card.features.feature_type} input {list(card.input_shape)}")
    if card.litert_sha256:
        console.out.print(f"wrote {lite_path_for(path)}: the LiteRT export `drumcat infer` runs")
    else:
        console.out.print("no LiteRT export (model added with --trust-model, or LiteRT cannot express it): "
                          "infer runs it on Keras")


@model_app.command("list")
def model_list(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """The models this catalog has results from, and which the views classify with."""
    from drumcat.storage.results import model_list as list_models

    found = list_models(ctx.obj.open_catalog())
    if json_output:
        console.print_json(found)
        return
    for model in found:
        model["active"] = "*" if model["active"] else ""
    console.out.print(console.table("models (* = the views classify with it)", found,
                                    ["active", "id", "name", "sounds", "card_hash"]))


@model_app.command("use")
def model_use(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="One model (name or id), or several for an ensemble.")],
) -> None:
    """Make the views classify with this model, or with the mean of several models' probabilities."""
    from drumcat.storage.results import resolve_models, use_models

    catalog = ctx.obj.open_catalog()
    ids = resolve_models(catalog, names)
    use_models(catalog, ids)
    what = "the ensemble of " if len(ids) > 1 else ""
    console.out.print(f"the views now classify with {what}{' + '.join(names)}; "
                      "`drumcat materialize` rebuilds a tree with it")


@model_app.command("show")
def model_show(ctx: typer.Context, model: ModelOption = None) -> None:
    """Print a model's card (labels, feature recipe, metrics) as JSON."""
    from drumcat.model.bundle import ModelCard, card_path_for
    from drumcat.resources import default_model_path

    path = ctx.obj.model_path(model) or default_model_path()
    console.out.print(ModelCard.read(card_path_for(path)).to_json(), markup=False, highlight=False)


rules_app = typer.Typer(help="The rules the views apply: show them, store them.")
app.add_typer(rules_app, name="rules")


@rules_app.callback(invoke_without_command=True)
def rules_show(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show each rule's effective value and where it comes from (default, catalog, drumcat.toml)."""
    if ctx.invoked_subcommand is not None:
        return
    from drumcat.storage.rules import effective_rules

    state: State = ctx.obj
    source = f"drumcat.toml ({state.config.source})" if state.config.source else "drumcat.toml"
    with state.open_catalog().read() as conn:
        report = effective_rules(conn, [(source, state.rule_changes())])
    if json_output:
        console.print_json(report)
        return
    console.out.print(console.table("rules", report))


@rules_app.command("set")
def rules_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="threshold, uncertain_margin, dedup, allow_all or target_labels.")],
    value: Annotated[str, typer.Argument(help="The value, e.g. 0.6, true, or Kick,Snare,Hihat.")],
) -> None:
    """Store a rule in the catalog (what every command and a sqlite3 user then see)."""
    from drumcat.storage.rules import parse_rule, store_rules

    store_rules(ctx.obj.open_catalog(), parse_rule(name, value))
    console.out.print(f"stored {name} = {value}")


@rules_app.command("apply")
def rules_apply(ctx: typer.Context) -> None:
    """Store drumcat.toml's [taxonomy] rules (and its canonical mapping and overrides files) in the catalog."""
    from drumcat.storage.rules import config_rule_changes, store_rules

    state: State = ctx.obj
    if state.config.source is None:
        raise DrumcatError("rules apply: no drumcat.toml was read; pass --config FILE or run it where the file is")
    names = store_rules(state.open_catalog(), config_rule_changes(state.config), where=f"{state.config.source}: ")
    console.out.print(f"stored {', '.join(names) or 'nothing (the file sets no rules)'} from {state.config.source}")


@app.command()
def check(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option("--quick", help="SQLite's quick_check instead of the full check.")]
    = False,
) -> None:
    """Run SQLite's integrity check (and the foreign keys) on the catalog; exit 1 if it finds damage."""
    from drumcat.storage.catalog import one_line_database_error

    state: State = ctx.obj
    catalog = state.open_catalog()
    try:
        problems = catalog.check(full=not quick)
    except DrumcatError:
        raise
    except Exception as exc:  # damage SQLite reports while reading, not as check rows
        raise DrumcatError(one_line_database_error(state.catalog_path, exc)) from exc
    if problems:
        for problem in problems[:20]:
            console.warn_line(problem)
        raise DrumcatError(f"{state.catalog_path}: {len(problems)} problem(s) found; restore a backup, or rebuild "
                           "the catalog with `drumcat scan` and `drumcat infer`")
    console.out.print(f"{state.catalog_path}: ok (schema {catalog.schema_version()})")


@app.command()
def views(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the catalog's views, one line each, and which can be materialized."""
    from drumcat.storage.query import list_views

    found = list_views(ctx.obj.open_catalog(), ctx.obj.rule_changes())
    if json_output:
        console.print_json(found)
        return
    for view in found:
        mark = "src/dest" if view["materializable"] else "        "
        count = "?" if view["rows"] is None else view["rows"]
        console.out.print(f"{view['view']:<20} {mark} {count:>8} rows  {view['description']}",
                          markup=False, highlight=False)


@app.command()
def materialize(
    ctx: typer.Context,
    view: Annotated[str, typer.Option(help="A view with src and dest columns.")] = "organized_default",
    out: Annotated[Path, typer.Option(help="Output folder (created, or replaced if it is a drumcat tree).")]
    = Path("organized"),
    mode: Annotated[str, typer.Option(
        help="symlink, hardlink or copy (a hardlink is the original file: edit samples in a copy tree).")] = "symlink",
    target_labels: Annotated[
        str | None, typer.Option("--target-labels", "--labels", help="Target labels for this run, e.g. Kick,Snare.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Confidence threshold for this run.")] = None,
    uncertain_margin: Annotated[float | None, typer.Option(help="Uncertain margin for this run.")] = None,
    allow_all: Annotated[bool, typer.Option("--allow-all", help="A folder per fine class.")] = False,
    no_dedup: Annotated[bool, typer.Option("--no-dedup", help="Keep every copy of a duplicate (--dedup off).")]
    = False,
    dedup: Annotated[str | None, typer.Option(help="exact (one file per content hash), near (one per "
                                                   "near-duplicate group) or off.")] = None,
    overrides: Annotated[Path | None, typer.Option(help="overrides.jsonl to apply for this run.")] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Replace a tree even with an empty one.")]
    = False,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Build a folder tree from a view. Atomic: the old tree stays until the new one is complete."""
    from drumcat.commands.materialize import materialize as run_materialize
    from drumcat.storage.rules import RuleChanges, parse_rule, read_overrides_file

    flags = RuleChanges(
        threshold=threshold, uncertain_margin=uncertain_margin,
        target_labels=parse_rule("target_labels", target_labels).target_labels if target_labels else None,
        allow_all=True if allow_all else None,
        dedup="off" if no_dedup else dedup,
        overrides=read_overrides_file(overrides) if overrides else None,
    )
    changes = ctx.obj.rule_changes(flags)
    catalog = ctx.obj.open_catalog()
    with console.progress_bar("materializing", quiet=quiet or json_output) as (set_total, advance):
        summary = run_materialize(catalog, view, out, mode=mode, changes=changes, allow_empty=allow_empty,
                                  on_total=set_total, on_progress=advance)
    for missing in summary.missing_sources[:20]:
        console.warn_line(f"{missing}: source file is gone since the last scan; skipped (rescan to update)")
    if json_output:
        console.print_json(summary.as_dict())
        return
    folders = [{"folder": k, "files": v} for k, v in summary.per_folder.items()]
    console.out.print(console.table(f"{summary.files} files from {view} ({mode})", folders))
    console.out.print(f"tree: {summary.out}  (manifests in _manifests/, summary in _summary.json)")


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="A read-only SQL statement.")],
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    json_output: JsonOption = False,
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
) -> None:
    """Run read-only SQL against the catalog and print a table, CSV or JSON."""
    import csv
    import sys

    from drumcat.storage.query import run_readonly

    columns, records = run_readonly(ctx.obj.open_catalog(), sql, limit, ctx.obj.rule_changes())
    if csv_output:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(records)
    elif json_output:
        console.print_json([dict(zip(columns, record, strict=True)) for record in records])
    else:
        console.out.print(console.table(None, [dict(zip(columns, r, strict=True)) for r in records], columns))


@app.command()
def override(
    ctx: typer.Context,
    path_or_hash: Annotated[str, typer.Argument(help="A cataloged file or a content hash.")],
    label: Annotated[str, typer.Argument(help="The correct fine label (or misc).")],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Correct a label. Keyed by content hash, so it survives moves, renames and re-inference."""
    from drumcat.storage.rules import add_override

    item = add_override(ctx.obj.open_catalog(), path_or_hash, label, note)
    console.out.print(f"override {item['hash'][:16]}… -> {item['correct_label']}")


overrides_app = typer.Typer(help="Import and export overrides (the reference overrides.jsonl).", no_args_is_help=True)
app.add_typer(overrides_app, name="overrides")


@overrides_app.command("import")
def overrides_import(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="overrides.jsonl")]) -> None:
    """Add or replace overrides from a JSON-lines file."""
    from drumcat.storage.rules import read_overrides_file, write_overrides

    items = read_overrides_file(file)
    with ctx.obj.open_catalog().connect() as conn:
        write_overrides(conn, items)
    console.out.print(f"imported {len(items)} override(s) from {file}")


@overrides_app.command("export")
def overrides_export(
    ctx: typer.Context, file: Annotated[Path | None, typer.Argument(help="Output file (default: stdout).")] = None
) -> None:
    """Write every override as overrides.jsonl lines (to a new file, or over an earlier export)."""
    import json

    from drumcat.storage.rules import export_overrides, write_overrides_file

    if file is None:
        print("".join(json.dumps(item) + "\n" for item in export_overrides(ctx.obj.open_catalog())), end="")
    else:
        written = write_overrides_file(ctx.obj.open_catalog(), file)
        console.err.print(f"wrote {written} override(s) to {file}")


@app.command()
def similar(
    ctx: typer.Context,
    path_or_hash: Annotated[str, typer.Argument(help="A catalogued file, a content hash, or any audio file.")],
    k: Annotated[int, typer.Option("-k", help="How many neighbours.")] = 10,
    folder: Annotated[str | None, typer.Option(help="Only sounds the views put in this folder, e.g. Snare.")] = None,
    json_output: JsonOption = False,
) -> None:
    """More like this: the nearest sounds by the active model's embedding (cosine distance)."""
    from drumcat.commands.similar import similar as find_similar

    state: State = ctx.obj
    result = find_similar(state.open_catalog(), path_or_hash, k=k, folder=folder, changes=state.rule_changes())
    if json_output:
        console.print_json(result)
        return
    console.out.print(console.table(f"nearest to {path_or_hash}", result["neighbours"],
                                    ["rank", "distance", "label", "confidence", "folder", "path"]))


@app.command()
def adapt(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="The new model (default: models/BASE-adapted-N.keras "
                                                  "beside the catalog).")] = None,
    base: Annotated[str | None, typer.Option(help="The model to adapt (default: the active one).")] = None,
    epochs: Annotated[int, typer.Option(help="Optimizer steps over all examples.")] = 400,
    allow_new_labels: Annotated[bool, typer.Option("--allow-new-labels",
                                                   help="An override label the base model lacks becomes a class.")]
    = False,
    use: Annotated[bool, typer.Option("--use", help="Make the adapted model the one the views use.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Learn from this catalog's overrides: a new model bundle, cross-validated, ready to use."""
    from drumcat.model.adapt import adapt as run_adapt

    state: State = ctx.obj
    if epochs < 1:
        raise DrumcatError(f"--epochs {epochs}: use 1 or more")
    catalog = state.open_catalog()
    report = run_adapt(catalog, out=out, base=base, steps=epochs, allow_new_labels=allow_new_labels, use=use,
                       mapping=state.canonical_map(),
                       on_stage=None if json_output else lambda text: console.err.print(f"adapt: {text}"))
    if json_output:
        console.print_json(report.as_dict())
        return
    cv = report.cross_validation
    console.out.print(f"wrote {report.out} from {report.base} in {report.seconds:.0f} s: "
                      f"{sum(report.overrides_used.values())} overrides, {report.replay} replayed sounds "
                      f"({report.carried_over} close to a correction in its folder, fitted with its label)")
    console.out.print(console.table(
        f"cross-validation on the overrides ({cv['folds']} folds: each fold held out, fitted on the rest)",
        [{"model": name, **cv[name]} for name in ("base", "adapted")]))
    for reason, count in report.skipped.items():
        console.warn_line(f"{count} override(s) skipped: {reason}")
    if report.activated:
        console.out.print("the views now classify with it; `drumcat materialize` rebuilds a tree")
    else:
        console.out.print(f"apply it: drumcat model use {report.out.stem}")


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")]
    = "127.0.0.1",
    read_only: Annotated[bool, typer.Option("--read-only", help="Browse and listen only; no corrections.")] = False,
    learn_every: Annotated[int | None, typer.Option(help="Decisions between two rounds of learning from the "
                                                         "corrections (the views then use the model learned; 0: "
                                                         "never).")] = None,
) -> None:
    """The review page: browse, audition and correct the catalog in a browser. Ctrl-C stops it."""
    import uvicorn

    from drumcat.commands.learning import Learner
    from drumcat.web.app import ReviewServer, allowed_hosts, create_app, is_loopback

    state: State = ctx.obj
    if not 0 < port < 65536:
        raise DrumcatError(f"--port {port}: use a port between 1 and 65535")
    if learn_every is not None and learn_every < 0:
        raise DrumcatError(f"--learn-every {learn_every}: use 0 (never) or more")
    catalog = state.open_catalog()
    learner = None if read_only else Learner(catalog, mapping=state.canonical_map(),
                                             **({} if learn_every is None else {"every": learn_every}))
    changes = state.rule_changes()
    if changes.canonical_map:
        from drumcat.storage.rules import changes_stored_map

        with catalog.read() as conn:
            if changes_stored_map(conn, changes.canonical_map):
                console.warn_line(f"{state.config.source}: its canonical mapping is not the catalog's, so every "
                                  "page files the sounds again (slow in a large catalog); `drumcat rules apply` "
                                  "stores it once")
    server = ReviewServer(catalog, read_only=read_only, changes=changes, learner=learner)
    if not is_loopback(host):
        console.warn_line(f"--host {host}: whoever can reach this address can hear the sounds"
                          + ("" if read_only else " and correct them (--read-only to only listen)"))
    console.out.print(f"drumcat review page: http://{host}:{port}/  ({'read-only, ' if read_only else ''}"
                      "Ctrl-C stops it)")
    if learner is not None:
        console.out.print(f"learning: {learner.status()['message']}")
    try:
        uvicorn.run(create_app(server, allowed_hosts(host)), host=host, port=port, log_level="warning")
    except OSError as exc:
        raise DrumcatError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port") from exc
    if learner is not None and learner.running:
        console.err.print("finishing the round of learning under way…")
        learner.wait()


@app.command()
def duplicates(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    limit: Annotated[int, typer.Option(help="Groups to list.")] = 20,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Find near-duplicates: one recording re-encoded, resampled, at another gain or depth, trimmed or mono.

    Fingerprints new sounds, compares them with the others, regroups the catalog, lists the groups."""
    from drumcat.commands.near_duplicates import find_near_duplicates, listed_groups

    catalog = ctx.obj.open_catalog()
    silent = quiet or json_output
    with (console.progress_bar("fingerprinting", quiet=silent, lazy=True) as (set_total, advance),
          console.progress_bar("comparing", quiet=silent, unit="sounds", lazy=True) as (compare_total, compared)):
        counts = find_near_duplicates(catalog, workers=workers or 0, on_total=set_total, on_progress=advance,
                                      on_compare_total=compare_total, on_compared=compared)
    listed = listed_groups(catalog, limit)
    if json_output:
        console.print_json({**counts, "groups_listed": listed})
        return
    console.out.print(f"{counts['groups']} near-duplicate group(s) holding {counts['in_groups']} of "
                      f"{counts['sounds']} sounds ({counts['fingerprinted']} fingerprinted, "
                      f"{counts['compared']} compared now)")
    if listed:
        console.out.print(console.table("groups (representative = the copy a --dedup near tree keeps)", listed))


@app.command()
def kit(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="The kit's folder (created; replaced only if it is a drumcat kit).")],
    view: Annotated[str, typer.Option(help="A view with src and slot or label columns.")] = "organized_default",
    kit_format: Annotated[str, typer.Option("--format", help="sfz or hydrogen.")] = "sfz",
    name: Annotated[str | None, typer.Option(help="The kit's name (default: the folder's name).")] = None,
    json_output: JsonOption = False,
) -> None:
    """A playable drum kit from a view: a sound per General MIDI slot, as SFZ or a Hydrogen drum kit."""
    from drumcat.commands.kit import build_kit

    state: State = ctx.obj
    summary = build_kit(state.open_catalog(), view, out, kit_format=kit_format, name=name,
                        changes=state.rule_changes())
    if json_output:
        console.print_json(summary.as_dict())
        return
    console.out.print(console.table(f"{summary.name}: {len(summary.slots)} slots ({summary.format})",
                                    summary.slots, ["key", "slot", "sample", "confidence", "src"]))
    console.out.print(f"kit: {summary.out}/{summary.file}")


@app.command()
def evaluate(
    ctx: typer.Context,
    labeled: Annotated[Path, typer.Argument(help="A folder of LABEL/ subfolders, or a CSV with path,label.")],
    model: Annotated[list[Path] | None, typer.Option(
        "--model", "-m", help="A .keras model with its card (default: the shipped one); several: each and "
                              "their ensemble.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the core confusion matrix as a PNG here.")] = None,
    trust_model: TrustOption = False,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Measure a model on your own hand-sorted samples: accuracy, macro-F1, per class, confusion, ECE."""
    from drumcat.model.evaluate import evaluate as run_evaluate
    from drumcat.model.evaluate import evaluate_ensemble, plot_confusion, read_groups, read_labeled

    state: State = ctx.obj
    pairs = read_labeled(labeled)
    groups = read_groups(labeled, pairs)
    mapping = state.canonical_map()
    bundles = [state.load_model(path, trust_model) for path in (model or [None])]
    with console.progress_bar("evaluating", quiet=quiet or json_output) as (set_total, advance):
        set_total(len(pairs) * len(bundles))
        if len(bundles) == 1:
            report = run_evaluate(bundles[0], pairs, mapping=mapping, groups=groups, on_progress=advance)
        else:
            both = evaluate_ensemble(bundles, pairs, mapping=mapping, groups=groups, on_progress=advance)
            report = {**both["ensemble"], "members": both["models"], "files": both["files"],
                      "decoded": both["decoded"], "errors": both["errors"]}
    if len(bundles) > 1 and not json_output:
        console.out.print(console.table("each model on the files all of them decoded", [
            {"model": r["model"], "core accuracy": r["core"]["accuracy"], "core macro-F1": r["core"]["macro_f1"],
             "fine accuracy": r.get("fine", {}).get("accuracy")} for r in report["members"]]))
        console.out.print(f"[bold]ensemble {report['model']}[/] (mean of the calibrated vectors):")
    if plot:
        plot_confusion(report["core"], f"{report['model']}: core labels on {labeled.name}", plot)
    for error in report["errors"]:
        console.warn_line(f"{error['path']}: {error['error']}")
    if json_output:
        console.print_json(report)
        return
    for level in ("core", "fine"):
        if level not in report:
            continue
        section = report[level]
        console.out.print(f"[bold]{level}[/]: accuracy {section['accuracy']:.3f}, macro-F1 {section['macro_f1']:.3f}, "
                          f"ECE {section['ece']:.3f} on {section['samples']} files")
        if "interval" in section:
            interval = section["interval"]
            drawn = "files" if interval["kits"] == section["samples"] else f"{interval['kits']} kits"
            console.out.print(f"  95% interval over draws of the {drawn}: accuracy {interval['accuracy'][0]:.3f}–"
                              f"{interval['accuracy'][1]:.3f}, macro-F1 {interval['macro_f1'][0]:.3f}–"
                              f"{interval['macro_f1'][1]:.3f}")
        console.out.print(console.table(f"{level} per class", section["per_class"]))
        classes, matrix = section["confusion"]["classes"], section["confusion"]["matrix"]
        confusion_rows = [{"true \\ predicted": name, **dict(zip(classes, row, strict=True))}
                          for name, row in zip(classes, matrix, strict=True)]
        console.out.print(console.table(f"{level} confusion", confusion_rows))
        print_kits_with_mistakes(section.get("per_kit", []))
    if plot:
        console.out.print(f"confusion plot: {plot}")


KITS_SHOWN = 12  # the per-kit table's rows in the terminal; --json has every kit


def print_kits_with_mistakes(per_kit: list[dict[str, Any]]) -> None:
    wrong = [row for row in per_kit if row["wrong"]]
    if not wrong:
        return
    console.out.print(console.table(f"core mistakes by kit ({len(wrong)} of {len(per_kit)} kits have some)",
                                    wrong[:KITS_SHOWN]))
    if len(wrong) > KITS_SHOWN:
        console.out.print(f"… and {len(wrong) - KITS_SHOWN} more kits with mistakes (--json lists every kit)")


def _parsed_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(width) for width in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 4 or min(widths) < 1:
        raise DrumcatError(f"--widths {text}: give four positive filter counts, e.g. 24,48,96,128")
    return widths


@app.command()
def train(
    dataset: Annotated[Path, typer.Option(help="Folder made by `make dataset`.")] = Path("build/dataset"),
    out: Annotated[Path, typer.Option(help="Where to write the model and its card.")] = Path(
        "models/drumcat-v2.keras"),
    epochs: Annotated[int, typer.Option(help="Most epochs (early stopping picks the best).")] = 30,
    copies: Annotated[int, typer.Option(help="Augmented copies of each training clip.")] = 3,
    refit: Annotated[bool, typer.Option(help="Refit the chosen model on train + validation kits.")] = True,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, each a full run; the first is shipped.")] = "1",
    teacher: Annotated[Path | None, typer.Option(help="Distil a half-size student from this trained model.")] = None,
    teacher_targets: Annotated[Path | None, typer.Option(
        help="Distil from precomputed out-of-kit probabilities (bench/probe_aisfx.py --teacher-out).")] = None,
    tail_seconds: Annotated[float | None, typer.Option(
        help="Seconds after the first one seen at a coarse time resolution [default: the recipe's]")] = None,
    core_weight: Annotated[float | None, typer.Option(
        help="Weight of a core-class cross-entropy beside the fine-class one (0: none) [default: the recipe's]")]
    = None,
    kit_balance: Annotated[bool, typer.Option(
        help="Weigh each clip by its kit's size too (inverse square root), so big fonts count less.")] = False,
    ema: Annotated[float | None, typer.Option(
        help="Momentum of a moving average of the weights, validated and kept (e.g. 0.998; 0: none).")] = None,
    decay_reshape: Annotated[float | None, typer.Option(
        help="Share of the augmented copies whose decay is made faster or slower (0..1; 0: none).")] = None,
    synth_train_kits: Annotated[int, typer.Option(
        help="Add this many synthesized kits to what every model fits on (never validated or tested on).")] = 0,
    members: Annotated[int, typer.Option(
        help="Networks trained per seed (seeds s, s+1000, ...) and shipped as one model averaging them.")] = 1,
    lite_weights: Annotated[str, typer.Option(
        help="How the LiteRT export infer runs stores its weights: float32, int8 or float16.")] = "float32",
    validation_only: Annotated[bool, typer.Option(
        help="Print the candidate's figures on the validation kits only: no refit, no test, nothing saved.")] = False,
    kit_folds: Annotated[int, typer.Option(
        help="With --validation-only: grouped cross-validation over the training + validation kits in this "
             "many folds, instead of the validation kits (first seed).")] = 0,
    fold_probabilities: Annotated[Path | None, typer.Option(
        help="With --kit-folds: write every clip's out-of-fold probabilities here (.npz).")] = None,
    folds_like: Annotated[Path | None, typer.Option(
        help="With --kit-folds: hold out each kit in the fold an earlier run's --fold-probabilities file held "
             "it in, so a changed dataset is compared on the same folds.")] = None,
    recipe_name: Annotated[str | None, typer.Option(
        "--recipe", help="A named feature recipe (at its own rate) instead of the dataset rate's own; an unknown "
                        "name lists the known ones.")] = None,
    pooling: Annotated[str | None, typer.Option(
        help="How each network pools its last feature maps: global (the shipped recipe) or time (over time "
             "only, one row per frequency band).")] = None,
    input_view: Annotated[str | None, typer.Option(
        help="What each network sees: plain (the log-mel patch, the shipped recipe) or band-centered (a second "
             "channel, each mel band minus its mean over the clip).")] = None,
    library_norm: Annotated[bool, typer.Option(
        help="With --kit-folds: also score each fold with batch-normalization statistics measured on the "
             "held-out clips (the whole fold, and each kit alone), as if they were a user's library.")] = False,
    kit_share: Annotated[float, typer.Option(
        help="With --kit-folds: each fold's model learns from only this share of the other folds' clips, "
             "whole kits in a fixed order, for a learning curve over the number of kits.")] = 1.0,
    widths: Annotated[str | None, typer.Option(
        help="Filters of each network's four convolutions, comma-separated [default: the recipe's]")]
    = None,
    kernels: Annotated[str, typer.Option(
        help="portable: an AVX2 CPU's numeric kernels in fixed thread counts, so that another x86 machine "
             "of the same kind repeats the run bit for bit (about 20% slower on an AVX-512 CPU); native: the "
             "fastest this CPU has.")] = "portable",
) -> None:
    """Train the default model on held-out-kit splits and write it with its card."""
    _choose_training_kernels(kernels)  # first: numpy and TensorFlow read the choice as they load
    from drumcat.model.runtime import LITE_WEIGHTS
    from drumcat.model.train.train import INPUT_VIEWS, POOLINGS
    from drumcat.model.train.train import train as run_train

    try:
        seed_list = tuple(int(seed) for seed in seeds.split(","))
    except ValueError as exc:
        raise DrumcatError(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 1,2,3") from exc
    if not (dataset / "manifest.csv").is_file():
        raise DrumcatError(f"{dataset}: no manifest.csv there; build the training set with `make dataset`")
    if kit_folds and (kit_folds < 2 or not validation_only):
        raise DrumcatError(f"--kit-folds {kit_folds}: use 2 or more, with --validation-only")
    if fold_probabilities and not kit_folds:
        raise DrumcatError(f"--fold-probabilities {fold_probabilities}: add --kit-folds K (and --validation-only)")
    if folds_like and not kit_folds:
        raise DrumcatError(f"--folds-like {folds_like}: add --kit-folds K (and --validation-only)")
    if library_norm and not kit_folds:
        raise DrumcatError("--library-norm: add --kit-folds K (and --validation-only)")
    if kit_share != 1.0 and not kit_folds:
        raise DrumcatError(f"--kit-share {kit_share}: add --kit-folds K (and --validation-only)")
    if not 0.0 < kit_share <= 1.0:
        raise DrumcatError(f"--kit-share {kit_share}: use a share above 0 and at most 1")
    if folds_like and not folds_like.is_file():
        raise DrumcatError(f"--folds-like {folds_like}: no such file; give an earlier run's --fold-probabilities .npz")
    recipe = {} if tail_seconds is None else {"tail_seconds": tail_seconds}  # unset: the shipped recipe's
    if core_weight is not None:
        recipe["core_weight"] = core_weight
    if kit_balance:
        recipe["kit_balance"] = True
    if ema is not None:
        if not 0 <= ema < 1:
            raise DrumcatError(f"--ema {ema}: use a momentum between 0 and 1, e.g. 0.998 (0: none)")
        recipe["ema"] = ema
    if decay_reshape is not None:
        if not 0 <= decay_reshape <= 1:
            raise DrumcatError(f"--decay-reshape {decay_reshape}: use a share between 0 and 1, e.g. 0.4 (0: none)")
        recipe["decay_reshape"] = decay_reshape
    if synth_train_kits:
        from drumcat.model.train.synth_kits import TRAIN_KITS

        if not 0 < synth_train_kits <= TRAIN_KITS:
            raise DrumcatError(f"--synth-train-kits {synth_train_kits}: use 1 to {TRAIN_KITS} (0: none)")
        recipe["synth_train_kits"] = synth_train_kits
    if recipe_name is not None:
        recipe["recipe_name"] = recipe_name
    if pooling is not None:
        if pooling not in POOLINGS:
            raise DrumcatError(f"--pooling {pooling}: use one of {', '.join(POOLINGS)}")
        recipe["pooling"] = pooling
    if input_view is not None:
        if input_view not in INPUT_VIEWS:
            raise DrumcatError(f"--input-view {input_view}: use one of {', '.join(INPUT_VIEWS)}")
        recipe["input_view"] = input_view
    if widths is not None:
        recipe["widths"] = _parsed_widths(widths)
    if members < 1:
        raise DrumcatError(f"--members {members}: use 1 (one network) or more")
    if lite_weights not in LITE_WEIGHTS:
        raise DrumcatError(f"--lite-weights {lite_weights}: use one of {', '.join(LITE_WEIGHTS)}")
    if validation_only and members > 1:
        raise DrumcatError("--members compares on validation as separate seeds: run --validation-only per seed, "
                           "then bench/fold_decisions.py on their --fold-probabilities")
    # Keras prints its epoch lines to stdout: they are progress, so they go to stderr with the rest.
    with contextlib.redirect_stdout(sys.stderr):
        if validation_only:
            from drumcat.model.train.train import candidate_on_validation

            summary = candidate_on_validation(dataset, epochs=epochs, copies=copies, seeds=seed_list,
                                              teacher_targets_path=teacher_targets, kit_folds=kit_folds,
                                              fold_probabilities=fold_probabilities, folds_like=folds_like,
                                              library_norm=library_norm, kit_share=kit_share, **recipe)
        else:
            card = run_train(dataset, out, epochs=epochs, copies=copies, refit=refit, seeds=seed_list,
                             teacher_path=teacher, teacher_targets_path=teacher_targets, members=members,
                             lite_weights=lite_weights, **recipe)
    if validation_only:
        console.out.print_json(data=summary)
        return
    spread = card.metrics["seeds"]
    console.out.print(
        f"wrote {out} (seed {seed_list[0]}); over seeds {','.join(map(str, seed_list))}: core-6 accuracy "
        f"{spread['core_accuracy']['mean']:.3f} ± {spread['core_accuracy']['std']:.3f}, macro-F1 "
        f"{spread['core_macro_f1']['mean']:.3f} ± {spread['core_macro_f1']['std']:.3f}; fine-34 macro-F1 "
        f"{spread['fine_macro_f1']['mean']:.3f}; ECE {spread['fine_ece']['mean']:.3f}"
    )


def _choose_training_kernels(kernels: str) -> None:
    from drumcat.model.train.kernels import KERNELS, use_portable_kernels

    if kernels not in KERNELS:
        raise DrumcatError(f"--kernels {kernels}: use one of {', '.join(KERNELS)}")
    if kernels == "portable":
        try:
            use_portable_kernels()
        except RuntimeError as exc:  # only a caller that imported numpy first, e.g. a test running the app
            raise DrumcatError(f"--kernels portable: {exc}; run `drumcat train` in a process of its own, or "
                               "pass --kernels native") from exc


@app.command("demo-archive")
def demo_archive(
    target: Annotated[Path, typer.Argument(help="Folder to (re)create the demo archive in.")],
) -> None:
    """Write the built-in demo archive of synthesized one-shots (used by `make demo`)."""
    from drumcat.commands.demo import build_demo_archive

    counts = build_demo_archive(target)
    console.out.print(
        f"demo archive in {target}: {counts['samples']} samples, {counts['duplicates']} duplicate, "
        f"{counts['broken']} broken files"
    )


_STATE: list[State] = []  # the running command's state, so an error escaping it can name its catalog


def _catalog_path_for_errors() -> Path:
    """The catalog the failing command was using, for its one-line error."""
    return _STATE[-1].catalog_path if _STATE else Path("catalog")


def _one_blas_thread() -> None:
    """Before numpy loads (importing this module does not load it): the commands' own numpy work is
    small, and an idle BLAS thread pool would make the process multi-threaded, so `infer` could not
    fork its workers (drumcat/workers.py). A value the user set wins."""
    from drumcat.workers import BLAS_THREAD_VARIABLES  # no numpy import

    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report it
INTERRUPTED = ("interrupted: what was committed is kept (every finished batch of `infer`, every file `scan` "
               "recorded, the sounds `duplicates` compared; a tree is swapped in only when complete); run the "
               "command again to continue")


def main() -> None:
    """Console-script entry: a DrumcatError, a database error or a file error becomes one line on stderr
    and exit status 1; Ctrl-C says what was kept."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    _one_blas_thread()
    try:
        app()
    except DrumcatError as exc:
        console.error_line(str(exc))
        sys.exit(1)
    except (DBAPIError, sqlite3.DatabaseError) as exc:
        from drumcat.storage.catalog import one_line_database_error

        console.error_line(one_line_database_error(_catalog_path_for_errors(), exc))
        sys.exit(1)
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError, PermissionError) as exc:
        console.error_line(f"{getattr(exc, 'filename', None) or 'input'}: {exc}; check the file and try again")
        sys.exit(1)
    except KeyboardInterrupt:
        console.error_line(INTERRUPTED)
        sys.exit(INTERRUPTED_STATUS)
    except SystemExit as exc:
        if exc.code == INTERRUPTED_STATUS:  # Typer turns a Ctrl-C in a command into this status, silently
            console.error_line(INTERRUPTED)
        raise
    finally:
        # What is alive now lives until exit: frozen, the interpreter's shutdown skips collecting it
        # (90 ms after `infer`, which loaded numpy, scipy and SQLAlchemy).
        gc.freeze()


if __name__ == "__main__":
    main()

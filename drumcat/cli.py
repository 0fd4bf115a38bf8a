"""The command line: parse arguments, call the library, print. No logic of its own lives here."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from drumcat import console
from drumcat.catalog import Catalog
from drumcat.config import Config, load_config
from drumcat.errors import DrumcatError

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

    def open_catalog(self) -> Catalog:
        return Catalog(self.catalog_path)


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
    from drumcat.scan import scan as run_scan

    state: State = ctx.obj
    scan_config = state.config.scan
    if workers is not None:
        scan_config.workers = workers
    catalog = state.open_catalog()
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
    from drumcat.stats import catalog_stats

    data = catalog_stats(ctx.obj.open_catalog())
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


@app.command("demo-archive")
def demo_archive(
    target: Annotated[Path, typer.Argument(help="Folder to (re)create the demo archive in.")],
) -> None:
    """Write the built-in demo archive of synthesized one-shots (used by `make demo`)."""
    from drumcat.demo import build_demo_archive

    counts = build_demo_archive(target)
    console.out.print(
        f"demo archive in {target}: {counts['samples']} samples, {counts['duplicates']} duplicate, "
        f"{counts['broken']} broken files"
    )


def main() -> None:
    """Console-script entry: a DrumcatError becomes one line on stderr and exit status 1."""
    try:
        app()
    except DrumcatError as exc:
        console.error_line(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        console.error_line("interrupted; committed work is kept, run the command again to continue")
        sys.exit(130)


if __name__ == "__main__":
    main()

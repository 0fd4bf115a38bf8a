"""The whole flow as a user runs it, with the shipped model: scan, infer, views, query, override,
materialize, evaluate, and their one-line errors."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import click

from tests.helpers import drumcat


def test_materialize_the_demo_and_read_its_summary(demo: Path) -> None:
    result = drumcat("--catalog", "c.db", "materialize", "--out", "tree", "--json", cwd=demo)
    summary = json.loads(result.stdout)
    assert summary["files"] == 24  # 24 unique sounds: the duplicate once, the broken files never
    assert summary["model"] == "drumcat-v2"
    assert sum(summary["per_folder"].values()) == 24
    assert set(summary["per_folder"]) <= {"Crash", "Hihat", "Kick", "Ride", "Snare", "Tom", "misc"}
    for folder, count in summary["per_folder"].items():
        assert len((demo / "tree" / "_manifests" / f"{folder}.txt").read_text().splitlines()) == count


def test_query_outputs(demo: Path) -> None:
    as_json = json.loads(drumcat("--catalog", "c.db", "query", "--json",
                                 "SELECT count(*) AS n FROM unique_files", cwd=demo).stdout)
    assert as_json == [{"n": 24}]
    as_csv = drumcat("--catalog", "c.db", "query", "--csv", "SELECT folder, count(*) FROM routed GROUP BY 1",
                     cwd=demo).stdout.splitlines()
    assert as_csv[0] == "folder,count(*)" and len(as_csv) >= 2


def test_query_is_read_only(demo: Path) -> None:
    result = drumcat("--catalog", "c.db", "query", "DELETE FROM files", cwd=demo, check=False)
    assert result.returncode == 1 and "read-only" in result.stderr
    count = drumcat("--catalog", "c.db", "query", "--json", "SELECT count(*) AS n FROM files", cwd=demo).stdout
    assert json.loads(count) == [{"n": 27}]


def test_views_lists_the_contract(demo: Path) -> None:
    listing = json.loads(drumcat("--catalog", "c.db", "views", "--json", cwd=demo).stdout)
    by_name = {v["view"]: v for v in listing}
    assert by_name["organized_default"]["materializable"] and not by_name["classified"]["materializable"]
    assert by_name["organized_full"]["rows"] == 24


def test_override_then_export(demo: Path) -> None:
    target = next((demo / "archive").rglob("smp_0003.*"))
    drumcat("--catalog", "c.db", "override", str(target), "Timpani", "--note", "tuned low", cwd=demo)
    routed = json.loads(drumcat("--catalog", "c.db", "query", "--json",
                                f"SELECT r.folder FROM routed r JOIN files f ON f.hash = r.hash "
                                f"WHERE f.path = '{target.resolve()}'", cwd=demo).stdout)
    assert routed == [{"folder": "Tom"}]  # Timpani collapses to Tom
    exported = drumcat("--catalog", "c.db", "overrides", "export", cwd=demo).stdout.splitlines()
    assert json.loads(exported[0])["correct_label"] == "Timpani"


def test_overrides_export_writes_no_sample_and_no_foreign_file(tmp_path: Path) -> None:
    """`overrides export archive/kick.wav`, a typo, emptied the sample; a notes file was replaced as well."""
    from drumcat.audio.synth import render, write_sample

    sample = write_sample(tmp_path / "archive" / "kick.wav", render("Kick", seed=1))
    original = sample.read_bytes()
    drumcat("--catalog", "c.db", "scan", "archive", cwd=tmp_path)
    drumcat("--catalog", "c.db", "override", str(sample), "Kick", cwd=tmp_path)
    into_sample = drumcat("--catalog", "c.db", "overrides", "export", str(sample), cwd=tmp_path, check=False)
    assert into_sample.returncode == 1 and "inside the scanned archive" in into_sample.stderr
    assert sample.read_bytes() == original
    (tmp_path / "notes.txt").write_text("mine")
    into_notes = drumcat("--catalog", "c.db", "overrides", "export", "notes.txt", cwd=tmp_path, check=False)
    assert into_notes.returncode == 1 and "not an overrides file" in into_notes.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    for _ in range(2):  # new, then over the earlier export
        drumcat("--catalog", "c.db", "overrides", "export", "out.jsonl", cwd=tmp_path)
    assert [json.loads(line)["correct_label"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [
        "Kick"]


def test_materialize_errors_are_one_line(demo: Path) -> None:
    inside = drumcat("--catalog", "c.db", "materialize", "--out", "archive/x", cwd=demo, check=False)
    assert inside.returncode == 1 and "inside the scanned archive" in inside.stderr
    assert len(inside.stderr.strip().splitlines()) == 1
    no_view = drumcat("--catalog", "c.db", "materialize", "--view", "files", "--out", "t2", cwd=demo, check=False)
    assert no_view.returncode == 1 and "lacks column(s) src, dest" in no_view.stderr
    bad_label = drumcat("--catalog", "c.db", "materialize", "--labels", "Kik", "--out", "t3", cwd=demo, check=False)
    assert bad_label.returncode == 1 and "unknown target label(s) Kik" in bad_label.stderr


def test_evaluate_on_a_labeled_folder(demo: Path, tmp_path: Path) -> None:
    from drumcat.audio.synth import render, write_sample

    for instrument in ("Kick", "Snare", "Hihat"):
        for seed in range(3):  # two vendor packs below each label folder, and one loose file
            pack = f"pack-{seed}" if seed < 2 else ""
            write_sample(tmp_path / "sorted" / instrument / pack / f"{seed}.wav", render(instrument, seed=500 + seed))
    plot = tmp_path / "confusion.png"
    result = drumcat("evaluate", str(tmp_path / "sorted"), "--json", "--plot", str(plot), cwd=demo)
    report = json.loads(result.stdout)
    assert report["decoded"] == 9 and report["core"]["samples"] == 9
    matrix = report["core"]["confusion"]["matrix"]
    assert report["core"]["accuracy"] == round(sum(matrix[i][i] for i in range(len(matrix))) / 9, 4)
    interval = report["core"]["interval"]  # drawn over pack-0, pack-1 and the three loose files
    assert interval["kits"] == 5 and interval["accuracy"][0] <= report["core"]["accuracy"] <= interval["accuracy"][1]
    assert {row["class"] for row in report["core"]["per_class"]} >= {"Kick", "Snare", "Hihat"}
    per_kit = report["core"]["per_kit"]  # the same five groups, and every mistake in one of them
    assert len(per_kit) == 5 and sum(row["files"] for row in per_kit) == 9
    assert sum(row["wrong"] for row in per_kit) == 9 - sum(matrix[i][i] for i in range(len(matrix)))
    assert [row["wrong"] for row in per_kit] == sorted((row["wrong"] for row in per_kit), reverse=True)
    assert plot.stat().st_size > 1000


def test_model_errors_are_one_line(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(b"not a model")
    result = drumcat("--catalog", "c.db", "infer", "--model", str(tmp_path / "m.keras"), cwd=demo, check=False)
    assert result.returncode == 1 and "model card not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_several_models_reports_each_and_their_ensemble(demo: Path, tmp_path: Path) -> None:
    from drumcat.audio.synth import render, write_sample
    from drumcat.resources import default_model_path

    for instrument in ("Kick", "Snare"):
        for seed in range(2):
            write_sample(tmp_path / "sorted" / instrument / f"{seed}.wav", render(instrument, seed=700 + seed))
    twin = tmp_path / "twin.keras"
    for suffix in (".keras", ".tflite"):
        twin.with_suffix(suffix).write_bytes(default_model_path().with_suffix(suffix).read_bytes())
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    twin.with_suffix(".json").write_text(json.dumps({**card, "name": "twin"}))
    single = json.loads(drumcat("evaluate", str(tmp_path / "sorted"), "--json", cwd=demo).stdout)
    both = json.loads(drumcat("evaluate", str(tmp_path / "sorted"), "--json", "-m", str(default_model_path()),
                              "-m", str(twin), cwd=demo).stdout)
    assert [m["model"] for m in both["members"]] == ["drumcat-v2", "twin"]
    assert both["model"] == "drumcat-v2+twin"
    # two identical members: the ensemble's mean vector is each one's, so every figure is the same
    for key in ("accuracy", "macro_f1", "ece"):
        assert both["core"][key] == single["core"][key] == both["members"][1]["core"][key]


def test_every_command_summary_is_one_paragraph_without_hard_breaks() -> None:
    """`drumcat --help` lists each command by its help's first paragraph, and Typer's rich mode keeps that
    paragraph's line breaks: a docstring's wrap showed as a ragged break in the middle of the list."""
    import typer.main

    from drumcat.cli import app

    def commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
        found = []
        for name, command in group.commands.items():
            found.append((prefix + name, command))
            if isinstance(command, click.Group):
                found += commands(command, f"{prefix}{name} ")
        return found

    broken = [name for name, command in commands(typer.main.get_command(app), "")
              if "\n" in inspect.cleandoc(command.help or "").split("\n\n")[0]]
    assert broken == []

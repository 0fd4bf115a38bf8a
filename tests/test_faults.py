"""Faults: scan, infer and materialize killed (SIGKILL) at random points, a bounded number of times each;
after every kill the catalog and the tree must still be sound and the archive untouched. And `materialize` and
`kit` killed at each step of swapping in their output folder, `adapt` at each step of moving in its bundle
(drumcat.staging)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.archive import make_archive
from drumcat.model.adapt import adapt, adapted_models_folder
from drumcat.model.bundle import bundle_files, load_bundle
from drumcat.outputs import KIT_MARKER, TREE_MARKER
from drumcat.storage.catalog import Catalog

KILLS = 8  # per command; each kill lands somewhere in start-up, the work, or the final commit or swap


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "archive"
    make_archive(root, 400)
    return root


def fingerprint_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def run_and_kill(args: list[str], cwd: Path, after: float) -> int:
    process = subprocess.Popen([sys.executable, "-m", "drumcat.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(after)
    process.send_signal(signal.SIGKILL)
    return process.wait()


def kit_files(kit: Path) -> list[str]:
    """The kit's files, checked against its marker's list (every listed sample there, nothing else)."""
    marker = json.loads((kit / KIT_MARKER).read_text())
    listed = sorted({KIT_MARKER, marker["file"], *(f"samples/{slot['sample']}" for slot in marker["slots"])})
    assert sorted(str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file()) == listed
    return listed


def run(args: list[str], cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "drumcat.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


def catalog_invariants(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # every stored result belongs to a committed batch: a run's count is its rows, exactly
        for run_id, predicted in conn.execute("SELECT id, predicted FROM inference_runs"):
            stored = conn.execute("SELECT count(*) FROM predictions WHERE run_id = ?", (run_id,)).fetchone()[0]
            assert stored == predicted, (run_id, stored, predicted)
        assert conn.execute("SELECT count(*) FROM predictions p WHERE NOT EXISTS "
                            "(SELECT 1 FROM files f WHERE f.hash = p.hash)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM (SELECT path FROM files GROUP BY path HAVING count(*) > 1)"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM audio a WHERE NOT EXISTS "
                            "(SELECT 1 FROM files f WHERE f.hash = a.hash)").fetchone()[0] == 0


def test_kills_leave_a_sound_catalog_a_whole_tree_and_the_archive_untouched(archive: Path, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("DRUMCAT_FAULT_SEED", "12")))
    before = fingerprint_of(archive)
    db = tmp_path / "c.db"
    for _ in range(KILLS):  # scan killed anywhere; the catalog stays sound and the next scan completes it
        run_and_kill(["--catalog", str(db), "scan", "-q", str(archive)], tmp_path, rng.uniform(0.3, 2.5))
        if db.exists():
            catalog_invariants(db)
    run(["--catalog", str(db), "scan", "-q", str(archive)], tmp_path)
    for _ in range(KILLS):
        run_and_kill(["--catalog", str(db), "infer", "-q", "--batch-size", "32"], tmp_path, rng.uniform(0.5, 3.0))
        catalog_invariants(db)
    run(["--catalog", str(db), "infer", "-q"], tmp_path)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM unique_files").fetchone() == conn.execute(
            "SELECT count(*) FROM predictions").fetchone()  # the rerun finished every sound once

    tree = tmp_path / "tree"
    run(["--catalog", str(db), "materialize", "--out", str(tree), "--mode", "copy"], tmp_path)
    complete = sorted(json.loads((tree / TREE_MARKER).read_text())["files"])
    for _ in range(KILLS):  # the tree at `tree` is the old one or the new one, never half of either
        run_and_kill(["--catalog", str(db), "materialize", "--out", str(tree), "--mode", "copy"], tmp_path,
                     rng.uniform(0.3, 2.0))
        listed = sorted(json.loads((tree / TREE_MARKER).read_text())["files"])
        assert listed == complete
        assert all((tree / f).is_file() for f in listed)
    run(["--catalog", str(db), "materialize", "--out", str(tree), "--mode", "copy"], tmp_path)
    assert not list(tmp_path.glob(".tree.drumcat-*"))  # the next run removed what the kills left

    assert fingerprint_of(archive) == before  # nothing in the archive changed, byte for byte
    catalog_invariants(db)


CTRL_C_IN_A_COMMAND = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a prompt (a test runner's children may ignore it)
import drumcat.commands.stats as stats
stats.catalog_stats = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while it works
sys.argv = ["drumcat", "--catalog", sys.argv[1], "stats"]
from drumcat.cli import main
main()
"""


def test_ctrl_c_in_a_command_says_what_was_kept(tmp_path: Path) -> None:
    """A real SIGINT while a command runs: exit status 130 and one line saying what was kept and to run the
    command again (Typer turned the interrupt into status 130 without a word)."""
    from drumcat.storage.catalog import Catalog

    catalog = tmp_path / "catalog.db"
    Catalog(catalog, create=True).close()
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_COMMAND, str(catalog)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert done.returncode == 130
    assert done.stderr.startswith("error: interrupted: what was committed is kept")
    assert done.stderr.count("\n") == 1 and "run the command again" in done.stderr


KILLED_AT = """
import os, signal, sys
import drumcat.staging as staging
from drumcat.commands import kit, materialize

command, point = sys.argv[1], sys.argv[2]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def dying_after(function):
    def call(*args, **kwargs):
        function(*args, **kwargs)
        die()
    return call


def marker_cut_short(nth):
    calls = []
    real = staging.mark_as_own
    def mark(folder, out):
        calls.append(folder)
        if len(calls) < nth:
            return real(folder, out)
        (folder / staging.STAGING_MARKER).write_text('{"o')  # killed between the marker's open and its write
        die()
    return mark


if point == "building":  # the output half built, its staging marker in place
    if command == "kit":
        kit.copy_samples = dying_after(kit.copy_samples)
    else:
        materialize._build_tree = dying_after(materialize._build_tree)
elif point == "built":  # the output whole, its staging marker removed, not yet swapped in
    staging.swap_in = lambda staging_folder, out: die()
elif point == "marking the new folder":
    staging.mark_as_own = marker_cut_short(1)
elif point == "marking the old folder":  # swapped: the old output beside `out`, being marked for removal
    staging.mark_as_own = marker_cut_short(2)
sys.argv = ["drumcat", "--catalog", "c.db", command, "--out", "OUT"]
from drumcat.cli import main
main()
"""


@pytest.mark.parametrize("command", ["materialize", "kit"])
@pytest.mark.parametrize("point", ["building", "built", "marking the new folder", "marking the old folder"])
def test_a_kill_at_each_step_of_a_swap_leaves_a_whole_output_and_nothing_the_next_run_keeps(
        demo: Path, command: str, point: str) -> None:
    """A SIGKILL at each step of building and swapping in an output folder, placed by the command itself
    (random kills rarely land in these few milliseconds): `OUT` stays whole, and the next run removes
    everything the killed one left beside it."""
    def whole() -> list[str]:
        return kit_files(out) if command == "kit" else sorted(json.loads((out / TREE_MARKER).read_text())["files"])

    out = demo / "OUT"
    run(["--catalog", "c.db", command, "--out", "OUT"], demo)
    before = whole()
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, command, point], cwd=demo, capture_output=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(demo.glob(".OUT.drumcat-*"))  # the kill left something beside the output...
    assert whole() == before
    run(["--catalog", "c.db", command, "--out", "OUT"], demo)
    assert not list(demo.glob(".OUT.drumcat-*"))  # ...and the next run removed it
    assert whole() == before


ADAPT_KILLED_AT = """
import os, signal, sys
from pathlib import Path
from drumcat.model import adapt

catalog, point = sys.argv[1], sys.argv[2]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "saved":  # the bundle whole in its staging folder, nothing recorded or moved yet
    save_bundle = adapt.save_bundle
    def saved_then_killed(*args, **kwargs):
        save_bundle(*args, **kwargs)
        die()
    adapt.save_bundle = saved_then_killed
else:  # killed as the weights, the export, or the card (the last) arrived beside the other models: each
    # move is a hard link and an unlink, and the kill lands between the two (both names hold the file)
    links_until_killed = {"weights moved": 1, "export moved": 2, "card moved": 3}[point]
    link, linked = os.link, []
    def link_then_die(source, destination):
        link(source, destination)
        linked.append(destination)
        if len(linked) == links_until_killed:
            die()
    os.link = link_then_die
sys.argv = ["drumcat", "--catalog", catalog, "adapt"]
from drumcat.cli import main
main()
"""


@pytest.mark.parametrize("point", ["saved", "weights moved", "export moved", "card moved"])
def test_an_adapt_killed_at_each_step_of_its_write_is_undone_by_the_next(corrected: Catalog, point: str) -> None:
    """A SIGKILL while `adapt` writes its bundle (weights, LiteRT export, card last): before the card, the
    next adapt takes back every file the killed one moved in and writes under the same name; after it, the
    killed one's bundle is whole and stays, and only its staging folder goes."""
    models = adapted_models_folder(corrected)
    killed = subprocess.run([sys.executable, "-c", ADAPT_KILLED_AT, str(corrected.path), point],
                            capture_output=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(models.glob(".*.drumcat-adapt-*"))  # the kill left its staging folder...
    committed = point == "card moved"
    report = adapt(corrected)
    assert not list(models.glob(".*.drumcat-adapt-*"))  # ...and the next adapt removed it
    assert report.out.name == ("drumcat-v2-adapted-2.keras" if committed else "drumcat-v2-adapted-1.keras")
    first = models / "drumcat-v2-adapted-1.keras"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        p.name for p in [*(bundle_files(first) if committed else []), *bundle_files(report.out)])
    if committed:
        assert load_bundle(first).card.training["adapted_from"]["name"] == "drumcat-v2"  # whole and loadable

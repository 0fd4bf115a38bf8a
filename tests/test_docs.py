"""The README's example outputs are the program's real outputs on the demo archive (docs/examples.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def assert_docs_script_finds_nothing_stale(script: str, timeout: int) -> None:
    result = subprocess.run([sys.executable, str(REPO / "docs" / script), "--check"], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{result.stderr}\n{result.stdout}"


def test_readme_examples_are_what_drumcat_prints_today() -> None:
    assert_docs_script_finds_nothing_stale("examples.py", timeout=600)


def test_every_example_block_is_marked_and_named() -> None:
    sys.path.insert(0, str(REPO / "docs"))
    from examples import EXAMPLES

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert sorted(name for name in EXAMPLES if f"<!-- example: {name} -->\n```\n" in readme) == sorted(EXAMPLES)


def test_readme_model_tables_are_the_shipped_cards() -> None:
    assert_docs_script_finds_nothing_stale("model_tables.py", timeout=60)


def test_every_model_table_is_marked_and_a_stale_figure_is_caught() -> None:
    import json

    sys.path.insert(0, str(REPO / "docs"))
    from model_tables import CARD, TABLES, rewritten

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    card = json.loads(CARD.read_text(encoding="utf-8"))
    assert sorted(name for name in TABLES if f"<!-- model-table: {name} -->\n|" in readme) == sorted(TABLES)
    card["metrics"]["test"]["core"]["accuracy"] += 0.01  # what the README would show of another model
    assert "held_out" in rewritten(readme, card)[1]

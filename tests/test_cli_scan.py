"""The scan and stats commands as a user runs them: real processes, stdout and stderr, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import drumcat


def test_scan_then_stats_json(archive: Path, tmp_path: Path) -> None:
    (archive / "bad.wav").write_text("garbage")
    result = drumcat("--catalog", "c.db", "scan", "--quiet", str(archive), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout
    stats = json.loads(drumcat("--catalog", "c.db", "stats", "--json", cwd=tmp_path).stdout)
    assert stats["totals"]["present"] == 7
    assert stats["totals"]["errors"] == 1
    assert stats["errors"][0]["path"].endswith("bad.wav")
    assert {row["format"] for row in stats["by_format"]} == {"WAV", "AIFF", "FLAC", "OGG", "MP3"}


def test_scan_json_summary(archive: Path, tmp_path: Path) -> None:
    result = drumcat("--catalog", "c.db", "scan", "--json", str(archive), cwd=tmp_path)
    assert json.loads(result.stdout)["new"] == 6


def test_missing_archive_is_one_line_error(tmp_path: Path) -> None:
    result = drumcat("--catalog", "c.db", "scan", str(tmp_path / "nowhere"), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "nowhere: not a folder" in result.stderr


def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "drumcat.toml").write_text("[scan]\nhash = 'md5'\n")
    result = drumcat("stats", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "scan.hash: unknown key" in result.stderr


def test_stats_does_not_import_tensorflow(archive: Path, tmp_path: Path) -> None:
    drumcat("--catalog", "c.db", "scan", "--quiet", str(archive), cwd=tmp_path)
    probe = (
        "import sys\n"
        "from drumcat.cli import app\n"
        "try:\n    app(['--catalog', 'c.db', 'stats', '--json'])\nexcept SystemExit:\n    pass\n"
        "print('TF-LOADED' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'TF-ABSENT')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("TF-ABSENT"), result.stdout + result.stderr

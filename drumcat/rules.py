"""The rules the views read, kept as catalog tables: settings, target labels, canonical map, overrides.

drumcat.toml fills them; a command's flags change them for that command only (inside a transaction that
is rolled back); `drumcat override` and `overrides import` change overrides for good.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from drumcat.catalog import Catalog, execute_many, rows, utc_now
from drumcat.config import Config
from drumcat.errors import DrumcatError
from drumcat.taxonomy import MISC, read_canonical_mapping


@dataclass
class RuleChanges:
    """Per-command changes to the rules; None leaves a rule as the catalog has it."""

    threshold: float | None = None
    target_labels: list[str] | None = None
    allow_all: bool | None = None
    dedup: bool | None = None
    overrides: list[dict[str, str]] | None = None


def known_labels(conn: Connection) -> set[str]:
    return {r["name"] for r in rows(conn, "SELECT name FROM classes")} | {
        r["canonical"] for r in rows(conn, "SELECT DISTINCT canonical FROM canonical_map")
    }


def apply_rules(conn: Connection, changes: RuleChanges, where: str = "") -> None:
    """Write rule changes through `conn` (the caller decides whether the transaction commits)."""
    if changes.threshold is not None:
        if not 0.0 <= changes.threshold <= 1.0:
            raise DrumcatError(f"{where}misc threshold {changes.threshold} must be between 0 and 1")
        set_setting(conn, "misc_threshold", repr(float(changes.threshold)))
    if changes.allow_all is not None:
        set_setting(conn, "allow_all", "1" if changes.allow_all else "0")
    if changes.dedup is not None:
        set_setting(conn, "dedup", "1" if changes.dedup else "0")
    if changes.target_labels is not None:
        unknown = sorted(set(changes.target_labels) - known_labels(conn))
        if unknown:
            raise DrumcatError(f"{where}unknown target label(s) {', '.join(unknown)}; `drumcat views` shows classes")
        conn.exec_driver_sql("DELETE FROM target_labels")
        execute_many(conn, "INSERT INTO target_labels (label) VALUES (:label)",
                     [{"label": label} for label in changes.target_labels])
    if changes.overrides:
        write_overrides(conn, changes.overrides)


def set_setting(conn: Connection, key: str, value: str) -> None:
    conn.exec_driver_sql("UPDATE settings SET value = ? WHERE key = ?", (value, key))


def sync_from_config(catalog: Catalog, config: Config) -> None:
    """Make the catalog's rules match drumcat.toml. Only done when a config file was read."""
    if config.source is None:
        return
    taxonomy = config.taxonomy
    with catalog.connect() as conn:
        apply_rules(conn, RuleChanges(threshold=taxonomy.misc_threshold, target_labels=taxonomy.target_labels,
                                      dedup=taxonomy.dedup), where=f"{config.source}: taxonomy: ")
        if taxonomy.canonical_mapping:
            mapping = read_canonical_mapping(config.resolve(taxonomy.canonical_mapping))
            execute_many(conn, "INSERT OR REPLACE INTO canonical_map (fine, canonical) VALUES (:f, :c)",
                         [{"f": fine, "c": target} for fine, target in mapping.items()])
        if taxonomy.overrides:
            write_overrides(conn, read_overrides_file(config.resolve(taxonomy.overrides)))


@contextmanager
def rules_for_this_command(catalog: Catalog, changes: RuleChanges) -> Iterator[Connection]:
    """A connection that sees the catalog's rules with `changes` applied; nothing is kept afterwards."""
    with catalog.engine.connect() as conn:
        transaction = conn.begin()
        try:
            apply_rules(conn, changes)
            yield conn
        finally:
            transaction.rollback()


def active_model_name(conn: Connection) -> str | None:
    """The name of the model the views classify with (the `active_model` view), if any."""
    return conn.exec_driver_sql("SELECT name FROM models WHERE id = (SELECT model_id FROM active_model)").scalar()


# --- overrides ---------------------------------------------------------------------------------------


def resolve_hash(conn: Connection, path_or_hash: str) -> str:
    """A content hash from a hash, or from the path of a cataloged file."""
    candidate = path_or_hash.strip()
    if conn.exec_driver_sql("SELECT 1 FROM files WHERE hash = ? LIMIT 1", (candidate,)).first():
        return candidate
    path = str(Path(candidate).expanduser().resolve())
    found = conn.exec_driver_sql("SELECT hash FROM files WHERE path = ? AND hash IS NOT NULL", (path,)).scalar()
    if found is None:
        raise DrumcatError(f"{path_or_hash}: not a cataloged file or content hash; scan its archive first")
    return found


def add_override(catalog: Catalog, path_or_hash: str, label: str, note: str | None = None) -> dict[str, str]:
    with catalog.connect() as conn:
        digest = resolve_hash(conn, path_or_hash)
        override = {"hash": digest, "correct_label": label, "note": note or ""}
        write_overrides(conn, [override])
    return override


def write_overrides(conn: Connection, overrides: list[dict[str, str]]) -> None:
    allowed = known_labels(conn) | {MISC}
    for item in overrides:
        if item["correct_label"] not in allowed:
            raise DrumcatError(
                f"override for {item['hash'][:12]}…: unknown label {item['correct_label']!r}; "
                f"use one of the classes (see `drumcat query \"SELECT name FROM classes\"`) or misc"
            )
    execute_many(conn, """
        INSERT INTO overrides (hash, label, note, created_at) VALUES (:hash, :correct_label, :note, :now)
        ON CONFLICT(hash) DO UPDATE SET label = excluded.label, note = excluded.note,
                                        created_at = excluded.created_at""",
                 [{**item, "note": item.get("note") or None, "now": utc_now()} for item in overrides])


def read_overrides_file(path: Path) -> list[dict[str, str]]:
    """The reference design's overrides.jsonl: {"hash": ..., "correct_label": ..., "note": ...} per line."""
    overrides = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DrumcatError(f"{path}: overrides file not found") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DrumcatError(f"{path}:{number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(item, dict) or not item.get("hash") or not item.get("correct_label"):
            raise DrumcatError(f"{path}:{number}: each line needs \"hash\" and \"correct_label\"")
        overrides.append({"hash": str(item["hash"]), "correct_label": str(item["correct_label"]),
                          "note": str(item.get("note") or "")})
    return overrides


def export_overrides(catalog: Catalog) -> list[dict[str, str]]:
    with catalog.read() as conn:
        return [{"hash": r["hash"], "correct_label": r["label"], "note": r["note"] or ""}
                for r in rows(conn, "SELECT hash, label, note FROM overrides ORDER BY created_at, hash")]

"""The rules the views read, kept as catalog tables: settings, target labels, canonical map, overrides.

The catalog holds the rules a `sqlite3` user sees. drumcat.toml and a command's flags change them for
that command only (inside a transaction that is rolled back); `drumcat rules set` / `rules apply`,
`drumcat override` and `overrides import` change them for good.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from drumcat.config import Config
from drumcat.errors import DrumcatError, listing
from drumcat.outputs import refuse_archive_overlap
from drumcat.paths import catalog_text
from drumcat.staging import write_whole
from drumcat.storage.catalog import Catalog, execute_many, rows, scanned_archives
from drumcat.taxonomy import CORE_CLASSES, MISC, read_canonical_mapping
from drumcat.times import utc_now


@dataclass(frozen=True)
class Rules:
    """The rules the views apply, with one name each: the same in the catalog (`settings` keys, the
    `target_labels` table), in drumcat.toml's [taxonomy] section and in the command-line flags."""

    threshold: float = 0.5
    """Below this probability of the class its folder is named for, a sound is routed to misc (an override
    never is): the summed probability of its core class, or the fine class's in a folder-per-fine-class tree."""
    uncertain_margin: float = 0.15
    """A top-two probability gap under this lists a sound in the `uncertain` view."""
    dedup: str = "exact"
    """Trees hold one file per content hash (exact), per near-duplicate group (near), or every copy (off)."""
    allow_all: bool = False
    """The default tree has a folder per fine class instead of the target labels."""
    target_labels: tuple[str, ...] = tuple(CORE_CLASSES)
    """Canonical labels that get their own folder; everything else goes to misc."""


SETTING_NAMES = ("threshold", "uncertain_margin", "dedup", "allow_all")  # the rules kept in `settings`
DEDUP_MODES = ("exact", "near", "off")
RULE_NAMES = (*SETTING_NAMES, "target_labels")
DEFAULT_RULES = Rules()


@dataclass
class RuleChanges:
    """Changes to the stored rules; None leaves a rule as the catalog has it. drumcat.toml and flags give
    one each, applied to the command that reads them unless the user stores them (`drumcat rules`)."""

    threshold: float | None = None
    uncertain_margin: float | None = None
    dedup: str | None = None
    allow_all: bool | None = None
    target_labels: list[str] | None = None
    canonical_map: dict[str, str] | None = None
    overrides: list[dict[str, str]] | None = None

    def then(self, later: RuleChanges) -> RuleChanges:
        """These changes with `later`'s on top (drumcat.toml, then the flags)."""
        merged = dataclasses.asdict(self)
        merged.update({k: v for k, v in dataclasses.asdict(later).items() if v is not None})
        return RuleChanges(**merged)

    def set_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


def stored_rules(conn: Connection) -> Rules:
    """The rules as the catalog holds them (what a sqlite3 user's views apply)."""
    row = rows(conn, "SELECT threshold, uncertain_margin, dedup, allow_all FROM rules")[0]
    labels = tuple(r["label"] for r in rows(conn, "SELECT label FROM target_labels ORDER BY label"))
    return Rules(threshold=row["threshold"], uncertain_margin=row["uncertain_margin"], dedup=row["dedup"],
                 allow_all=bool(row["allow_all"]), target_labels=labels)


def effective_rules(conn: Connection, layers: list[tuple[str, RuleChanges]]) -> list[dict[str, Any]]:
    """Each rule's value and where it comes from: default, catalog, or a layer (drumcat.toml, a flag)."""
    stored = stored_rules(conn)
    report = []
    for name in RULE_NAMES:
        value = getattr(stored, name)
        source = "default" if value == getattr(DEFAULT_RULES, name) else "catalog"
        for layer_name, changes in layers:
            if getattr(changes, name) is not None:
                value, source = getattr(changes, name), layer_name
        if name == "target_labels":
            value = ",".join(sorted(value))
        report.append({"rule": name, "value": value, "source": source})
    return report


def canonical_map(conn: Connection) -> dict[str, str]:
    """The catalog's fine -> canonical mapping, the one the views apply."""
    return {r["fine"]: r["canonical"] for r in rows(conn, "SELECT fine, canonical FROM canonical_map")}


def changes_stored_map(conn: Connection, mapping: dict[str, str]) -> bool:
    """Whether `mapping` files any fine class elsewhere than the catalog's map does (a drumcat.toml map
    already stored with `drumcat rules apply` costs a command nothing)."""
    stored = canonical_map(conn)
    return any(stored.get(fine) != target for fine, target in mapping.items())


def known_labels(conn: Connection) -> set[str]:
    return {r["name"] for r in rows(conn, "SELECT name FROM classes")} | {
        r["canonical"] for r in rows(conn, "SELECT DISTINCT canonical FROM canonical_map")
    }


def apply_rules(conn: Connection, changes: RuleChanges, where: str = "") -> None:
    """Write rule changes through `conn` (the caller decides whether the transaction commits)."""
    for name in ("threshold", "uncertain_margin"):
        value = getattr(changes, name)
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise DrumcatError(f"{where}{name} {value} must be between 0 and 1")
            set_setting(conn, name, repr(float(value)))
    if changes.dedup is not None:
        set_setting(conn, "dedup", dedup_mode(changes.dedup, where))
    if changes.allow_all is not None:
        set_setting(conn, "allow_all", "1" if changes.allow_all else "0")
    if changes.canonical_map:
        execute_many(conn, "INSERT OR REPLACE INTO canonical_map (fine, canonical) VALUES (:f, :c)",
                     [{"f": fine, "c": target} for fine, target in changes.canonical_map.items()])
    if changes.target_labels is not None:
        unknown = sorted(set(changes.target_labels) - known_labels(conn))
        if unknown:
            raise DrumcatError(f"{where}unknown target label(s) {listing(unknown)}; `drumcat views` shows classes")
        conn.exec_driver_sql("DELETE FROM target_labels")
        execute_many(conn, "INSERT INTO target_labels (label) VALUES (:label)",
                     [{"label": label} for label in changes.target_labels])
    if changes.overrides:
        write_overrides(conn, changes.overrides)


def dedup_mode(value: str | bool, where: str = "") -> str:
    """exact, near or off; true and false (drumcat.toml's older form) mean exact and off."""
    if isinstance(value, bool):
        return "exact" if value else "off"
    if value not in DEDUP_MODES:
        raise DrumcatError(f"{where}dedup {value!r}: use exact, near or off")
    return value


def set_setting(conn: Connection, key: str, value: str) -> None:
    conn.exec_driver_sql("UPDATE settings SET value = ? WHERE key = ?", (value, key))


def parse_rule(name: str, text: str) -> RuleChanges:
    """`drumcat rules set NAME VALUE`: a rule from text, typed as `Rules` declares it."""
    if name not in RULE_NAMES:
        raise DrumcatError(f"unknown rule {name!r}; the rules are {', '.join(RULE_NAMES)}")
    kind = Rules.__dataclass_fields__[name].type
    if name == "target_labels":
        return RuleChanges(target_labels=[label.strip() for label in text.split(",") if label.strip()])
    if name == "dedup":
        return RuleChanges(dedup=dedup_mode({"true": True, "false": False}.get(text.lower(), text.lower())))
    if kind == "bool":
        if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise DrumcatError(f"{name}: expected true or false, got {text!r}")
        return RuleChanges(**{name: text.lower() in ("1", "true", "yes", "on")})
    try:
        return RuleChanges(**{name: float(text)})
    except ValueError as exc:
        raise DrumcatError(f"{name}: expected a number between 0 and 1, got {text!r}") from exc


def config_rule_changes(config: Config) -> RuleChanges:
    """drumcat.toml's [taxonomy] rules: only the keys the file sets (none when there is no file)."""
    taxonomy = config.taxonomy
    return RuleChanges(
        threshold=taxonomy.threshold, uncertain_margin=taxonomy.uncertain_margin,
        dedup=None if taxonomy.dedup is None else dedup_mode(taxonomy.dedup, f"{config.source}: taxonomy."),
        allow_all=taxonomy.allow_all, target_labels=taxonomy.target_labels,
        canonical_map=read_canonical_mapping(config.resolve(taxonomy.canonical_mapping))
        if taxonomy.canonical_mapping else None,
        overrides=read_overrides_file(config.resolve(taxonomy.overrides)) if taxonomy.overrides else None,
    )


def store_rules(catalog: Catalog, changes: RuleChanges, where: str = "") -> list[str]:
    """Keep rule changes in the catalog for good (`drumcat rules set` / `rules apply`); returns their names."""
    from drumcat.storage.core_decisions import recompute_core_decisions  # it reads the map this module writes

    with catalog.connect() as conn:
        apply_rules(conn, changes, where)
        if changes.canonical_map:  # every model's core folders follow the stored map
            recompute_core_decisions(conn)
    return changes.set_names()


@contextmanager
def rules_for_this_command(catalog: Catalog, changes: RuleChanges | None = None) -> Iterator[Connection]:
    """A connection that sees the catalog's rules with `changes` applied; nothing is kept afterwards.
    Without changes it is a plain reader, so it takes no write lock."""
    if changes is None or not changes.set_names():
        with catalog.read() as conn:
            yield conn
        return
    from drumcat.storage.core_decisions import recompute_core_decisions

    with catalog.engine.connect() as conn:
        transaction = conn.begin()
        try:
            decide_again = bool(changes.canonical_map) and changes_stored_map(conn, changes.canonical_map)
            apply_rules(conn, changes)
            if decide_again:  # the folders this command sees follow its map
                active = conn.exec_driver_sql("SELECT model_id FROM active_model").scalar()
                if active is not None:
                    recompute_core_decisions(conn, active)
            yield conn
        finally:
            transaction.rollback()


def active_model_name(conn: Connection) -> str | None:
    """The name of the model the views classify with (names joined by + for an ensemble), if any."""
    return conn.exec_driver_sql("SELECT group_concat(name, '+') FROM (SELECT name FROM models "
                                "WHERE id IN (SELECT model_id FROM active_model) ORDER BY id)").scalar()


# --- overrides ---------------------------------------------------------------------------------------


def resolve_hash(conn: Connection, path_or_hash: str) -> str:
    """A content hash from a hash, or from a file: its path as given or its real path (a symlink or a
    folder alias may lead there), or else its content, hashed as the catalog hashes."""
    candidate = path_or_hash.strip()
    if conn.exec_driver_sql("SELECT 1 FROM files WHERE hash = ? LIMIT 1", (catalog_text(candidate),)).first():
        return candidate
    given = Path(candidate).expanduser()
    for path in dict.fromkeys(catalog_text(p) for p in (str(given.absolute()), str(given.resolve()))):
        found = conn.exec_driver_sql("SELECT hash FROM files WHERE path = ? AND hash IS NOT NULL", (path,)).scalar()
        if found is not None:
            return found
    if given.is_file():
        algorithm = conn.exec_driver_sql("SELECT hash_algorithm FROM files WHERE hash_algorithm IS NOT NULL "
                                         "LIMIT 1").scalar() or "sha256"
        with open(given, "rb") as handle:
            digest = hashlib.file_digest(handle, algorithm).hexdigest()
        if conn.exec_driver_sql("SELECT 1 FROM files WHERE hash = ? LIMIT 1", (digest,)).first():
            return digest
    raise DrumcatError(f"{catalog_text(path_or_hash)}: not a cataloged file or content hash; scan its archive first")


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
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DrumcatError(f"{path}: not a text file of JSON lines; an overrides file holds one "
                           "{\"hash\": ..., \"correct_label\": ...} per line") from exc
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


def write_overrides_file(catalog: Catalog, path: Path) -> int:
    """Every override of the catalog into `path` as overrides.jsonl lines; returns how many.

    `path` may be new, or an overrides file (an earlier export, which it replaces whole, through a file
    beside it, so an interrupted export leaves the old one). Anything else is refused: a path in a scanned
    archive (a typo that names a sample would have emptied it) and an existing file of other content."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DrumcatError(f"{path}: folder {path.parent} does not exist; create it first or choose another file")
    refuse_archive_overlap(path, scanned_archives(catalog))
    if path.exists() and path.stat().st_size:
        try:
            read_overrides_file(path)
        except DrumcatError as exc:
            raise DrumcatError(f"{path}: exists and is not an overrides file; drumcat replaces only an earlier "
                               "export: choose another file") from exc
    items = export_overrides(catalog)
    write_whole(path, "".join(json.dumps(item) + "\n" for item in items))
    return len(items)


def export_overrides(catalog: Catalog) -> list[dict[str, str]]:
    with catalog.read() as conn:
        return [{"hash": r["hash"], "correct_label": r["label"], "note": r["note"] or ""}
                for r in rows(conn, "SELECT hash, label, note FROM overrides ORDER BY created_at, hash")]

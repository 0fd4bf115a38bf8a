"""`drumcat stats`: what the catalog holds, as one plain dict (printed as tables or JSON by the CLI)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection

from drumcat.storage.catalog import Catalog, rows, scalar
from drumcat.storage.rules import RuleChanges, active_model_name, rules_for_this_command


def _median(conn: Connection, table_sql: str, column: str) -> float | None:
    """The median of a column (the lower middle value), by sorting it once."""
    count = scalar(conn, f"SELECT count(*) FROM ({table_sql})")
    if not count:
        return None
    return scalar(
        conn, f"SELECT {column} FROM ({table_sql}) ORDER BY {column} LIMIT 1 OFFSET :o", {"o": (count - 1) // 2}
    )


def catalog_stats(catalog: Catalog, changes: RuleChanges | None = None, *, error_limit: int = 50) -> dict[str, Any]:
    """What the catalog holds; the label section reads the views with this command's rules."""
    with rules_for_this_command(catalog, changes) as conn:
        present_audio = "SELECT a.hash, a.duration FROM audio a JOIN unique_files u ON u.hash = a.hash"
        totals = rows(conn, """
            SELECT count(*) AS files,
                   sum(missing = 0) AS present,
                   sum(missing = 1) AS missing,
                   sum(missing = 0 AND error IS NOT NULL AND error_kind IS NOT 'excluded') AS errors,
                   sum(missing = 0 AND error_kind = 'excluded') AS excluded,
                   (SELECT count(*) FROM unique_files) AS unique_sounds,
                   coalesce(sum(CASE WHEN missing = 0 THEN size END), 0) AS bytes
            FROM files""")[0]
        totals = {key: value or 0 for key, value in totals.items()}
        stats: dict[str, Any] = {
            "catalog": str(catalog.path),
            "schema_version": catalog.schema_version(),
            "roots": rows(conn, "SELECT path, last_scan_at FROM roots ORDER BY path"),
            "totals": totals,
            "total_duration_s": round(scalar(conn, f"SELECT coalesce(sum(duration), 0) FROM ({present_audio})"), 3),
            "median_duration_s": _median(conn, present_audio, "duration"),
            "by_format": rows(conn, """
                SELECT format, count(*) AS files FROM catalog GROUP BY format ORDER BY files DESC, format"""),
            "by_sample_rate": rows(conn, """
                SELECT sample_rate, count(*) AS files FROM catalog GROUP BY sample_rate
                ORDER BY files DESC, sample_rate"""),
            "duplicate_groups": scalar(conn, "SELECT count(*) FROM unique_files WHERE copies > 1"),
            "duplicate_files": scalar(conn, "SELECT coalesce(sum(copies - 1), 0) FROM unique_files"),
            "errors_by_kind": rows(conn, """
                SELECT error_kind, count(*) AS files FROM files WHERE missing = 0 AND error IS NOT NULL
                AND error_kind IS NOT 'excluded' GROUP BY error_kind ORDER BY files DESC"""),
            "errors": rows(conn, """
                SELECT path, error_kind, error FROM files WHERE missing = 0 AND error IS NOT NULL
                AND error_kind IS NOT 'excluded' ORDER BY path LIMIT :n""", {"n": error_limit}),
        }
        stats.update(_prediction_stats(conn))
    return stats


def _prediction_stats(conn: Connection) -> dict[str, Any]:
    """Label distribution and confidence, once inference has run (the classified view exists)."""
    has_view = scalar(conn, "SELECT count(*) FROM sqlite_master WHERE type='view' AND name='classified'")
    if not has_view:
        return {}
    # One pass over the view, which files every sound again (a second on 320,000 sounds), and the figures
    # from its rows: a summary, a sort for the median and a grouping each took a pass of their own.
    found = conn.exec_driver_sql("SELECT label, core_label, confidence FROM classified").fetchall()
    if not found:
        return {}
    return {
        "active_model": active_model_name(conn),
        "labels": _label_counts(found),
        "confidence": _confidence_summary(sorted(row[2] for row in found)),
        "inference_errors": scalar(conn, "SELECT count(*) FROM inference_errors"),
    }


def _label_counts(found: list[Any]) -> list[dict[str, Any]]:
    """Sounds and mean confidence per (label, core_label), the most sounds first."""
    confidences: dict[tuple[str, str], list[float]] = defaultdict(list)
    for label, core_label, confidence in found:
        confidences[(label, core_label)].append(confidence)
    counted = [{"label": label, "core_label": core_label, "sounds": len(values),
                "mean_confidence": round(math.fsum(values) / len(values), 3)}
               for (label, core_label), values in confidences.items()]
    return sorted(counted, key=lambda row: (-row["sounds"], row["label"], row["core_label"]))


def _confidence_summary(ordered: list[float]) -> dict[str, Any]:
    """Count, mean, min, max and median (the lower middle value) of the sorted confidences."""
    return {"sounds": len(ordered), "mean": round(math.fsum(ordered) / len(ordered), 4),
            "min": round(ordered[0], 4), "max": round(ordered[-1], 4),
            "median": round(ordered[(len(ordered) - 1) // 2], 4)}

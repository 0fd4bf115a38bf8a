"""Times as drumcat writes them everywhere (catalog rows, model cards, tree summaries): ISO-8601 UTC text."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The current time, to the second: 2026-12-01T09:19:38Z."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_from_ns(ns: int) -> str:
    """A file system time in nanoseconds, in the same form."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

"""Learning while reviewing: the review page adapts the model in the background after every ROUND
decisions, so the next sounds it puts first are ranked by a model that has learned from every
correction so far.

Why rounds: one ranking's first 100 sounds hold many alike (velocity layers of one hat, one machine's
snares), and correcting the tenth of them teaches little the first did not. After a round, the sounds
like the ones just corrected are no longer uncertain and leave the top of the queue, so the next round
teaches something new. bench/adapt.py measures both ways on kits the model never saw (README, "Adapting
to your library").

A round adapts the *root* model (the one this catalog's embeddings come from, never an adapted one)
with every override so far (`drumcat adapt`, model/adapt.py), makes the new model the active one (the
views switch at once; the root model's results stay, so `drumcat model use ROOT` goes back), and then
retires the model the previous round made, results and files: a long session leaves one learned model,
not dozens. A round starts only while the views use the root model or the learner's own last one: a
model chosen elsewhere (`drumcat model use`) pauses learning instead of being replaced.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drumcat.commands.similar import forget_index
from drumcat.errors import DrumcatError
from drumcat.model.adapt import MIN_OVERRIDES, AdaptReport, adapt, adapted_models_folder
from drumcat.model.bundle import bundle_files, first_free_bundle
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import retire_model, set_active_model

ROUND = 25  # decisions between two rounds (`drumcat serve --learn-every`)


def root_model(catalog: Catalog, model_id: int) -> int:
    """The model `model_id` was adapted from, and so on back to one that was not adapted."""
    with catalog.read() as conn:
        known = rows(conn, "SELECT id, card_hash, card FROM models")
    by_hash = {r["card_hash"]: r for r in known}
    current = next(r for r in known if r["id"] == model_id)
    seen = set()
    while current["id"] not in seen:
        seen.add(current["id"])
        parent = json.loads(current["card"]).get("training", {}).get("adapted_from", {}).get("card_hash")
        if parent not in by_hash:
            break
        current = by_hash[parent]
    return current["id"]


def round_out(catalog: Catalog, root_name: str, corrections: int) -> Path:
    """models/ROOT-reviewed-N.keras beside the catalog, N the corrections it learned from (-2, -3 if taken)."""
    folder = adapted_models_folder(catalog)
    stem = f"{root_name}-reviewed-{corrections}"
    names = itertools.chain([stem], (f"{stem}-{number}" for number in itertools.count(2)))
    return first_free_bundle(folder / f"{name}.keras" for name in names)


class Learner:
    """Counts the review page's decisions and runs a round in a background thread after every `every`."""

    def __init__(self, catalog: Catalog, *, every: int = ROUND, mapping: dict[str, str] | None = None) -> None:
        self.catalog, self.every, self.mapping = catalog, every, mapping
        self.generation = 0  # rounds finished: the page re-reads its queue when this changes
        self.decisions = 0  # since the last round started
        self.last: AdaptReport | None = None
        self.error: str | None = None
        self.after_round: list[Callable[[], None]] = []  # called when a round has switched the views
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.root, self.off = self._root_or_reason()

    def _root_or_reason(self) -> tuple[int | None, str | None]:
        if self.every < 1:
            return None, "learning is off (drumcat serve --learn-every 0)"
        with self.catalog.read() as conn:
            active = conn.exec_driver_sql("SELECT model_id FROM active_model").scalar()
            ensemble = conn.exec_driver_sql("SELECT count(*) FROM ensemble_members WHERE ensemble_id = ?",
                                            (active,)).scalar()
        if active is None:
            return None, "learning is off: no model has classified this catalog yet (drumcat infer)"
        if ensemble:
            return None, "learning is off: the views use an ensemble (drumcat model use ONE_MODEL to learn)"
        return root_model(self.catalog, active), None

    # --- what the page calls ---------------------------------------------------------------------------

    def after_decision(self, count: int = 1) -> None:
        """One more decision (or `count`); starts a round when enough were made and none is running."""
        with self._lock:
            if self.off is not None:
                return
            self.decisions += count
            if self.running or self.decisions < self.every or self.paused_by() or self.corrections() < MIN_OVERRIDES:
                return
            self.decisions = 0
            self._thread = threading.Thread(target=self._round, name="drumcat-learning")
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the running round (if any) has finished."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        state, message = self._state()
        return {"state": state, "message": message, "generation": self.generation,
                "model": self.last.out.stem if self.last else None,
                "learned_from": sum(self.last.overrides_used.values()) if self.last else 0}

    # --- the round ---------------------------------------------------------------------------------------

    def _round(self) -> None:
        previous = self.last
        try:
            corrections = self.corrections()
            report = adapt(self.catalog, base=str(self.root), mapping=self.mapping,
                           out=round_out(self.catalog, self.root_name(), corrections))
        except DrumcatError as exc:
            self.error = str(exc)
            return
        except Exception as exc:  # a background thread has no one else to tell: the page shows it
            self.error = f"{type(exc).__name__}: {exc}"
            return
        if self.paused_by() is None:  # else the user chose a model while this round ran: theirs stays
            set_active_model(self.catalog, report.model_id)
        if previous is not None:  # (kept if the user made it active or an ensemble's member meanwhile)
            retire_learned(self.catalog, previous.model_id, previous.out.resolve())
        self.last, self.error = report, None
        for listener in self.after_round:  # before the page can see the new generation
            listener()
        self.generation += 1

    # --- reading the catalog ---------------------------------------------------------------------------

    def corrections(self) -> int:
        with self.catalog.read() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM overrides").scalar())

    def root_name(self) -> str:
        with self.catalog.read() as conn:
            return conn.exec_driver_sql("SELECT name FROM models WHERE id = ?", (self.root,)).scalar()

    def paused_by(self) -> str | None:
        """The name of a model the user chose elsewhere, which learning must not replace."""
        with self.catalog.read() as conn:
            active = conn.exec_driver_sql("SELECT model_id FROM active_model").scalar()
            name = conn.exec_driver_sql("SELECT name FROM models WHERE id = ?", (active,)).scalar()
        own = self.last.model_id if self.last else None
        return None if active in (self.root, own) else name

    def _state(self) -> tuple[str, str]:
        if self.off is not None:
            return "off", self.off
        if self.running:
            return "learning", f"learning from {self.corrections()} corrections…"
        paused = self.paused_by()
        if paused:
            return "paused", f"learning paused: the views use {paused}, chosen elsewhere"
        to_go = max(self.every - self.decisions, MIN_OVERRIDES - self.corrections())
        more = f"{to_go} more decision{'s' * (to_go != 1)}"
        if self.error:
            return "waiting", f"the last round failed ({self.error}); it tries again after {more}"
        if self.last:
            return "learned", (f"ranked by {self.last.out.stem}, learned from "
                               f"{sum(self.last.overrides_used.values())} corrections; learns again after {more}")
        return "waiting", f"learns from your corrections after {more}"


def retire_learned(catalog: Catalog, model_id: int, path: Path) -> None:
    """A superseded round's model: its results, its cached index and its files (drumcat wrote them all).
    A model the user made active or put in an ensemble meanwhile is theirs now, and stays."""
    try:
        retire_model(catalog, model_id)
    except DrumcatError:
        return
    forget_index(catalog, model_id)
    for file in bundle_files(path):
        file.unlink(missing_ok=True)

"""`drumcat similar`: "more like this", the nearest sounds by the active model's stored embedding (cosine).

The embeddings are already in the catalog (`predictions.embedding`, written by `infer`). Searching them
is one matrix product: the unit-length float32 embeddings of one model are cached beside the catalog as
a numpy matrix (`CATALOG.index/model-N.npy`, memory-mapped), and brought up to date incrementally from
the predictions written since (by rowid), so a query after `drumcat infer` reads only the new rows.
A numpy matrix rather than sqlite-vec: a brute-force product over 1,000,000 x 128 floats is one BLAS call
(bench/similar.py), and sqlite-vec's brute-force scan is slower than that at this size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drumcat.errors import DrumcatError
from drumcat.staging import write_whole
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import decode_embeddings, unit_rows
from drumcat.storage.rules import RuleChanges, resolve_hash, rules_for_this_command


def index_dir(catalog: Catalog) -> Path:
    return catalog.path.with_name(catalog.path.name + ".index")


@dataclass
class EmbeddingIndex:
    """One model's embeddings, unit length, one row per content hash."""

    model_id: int
    hashes: np.ndarray  # (n,) bytes: the content hashes
    matrix: np.ndarray  # (n, dims) float32, unit rows
    max_rowid: int  # the predictions rowid the matrix is up to date with

    @classmethod
    def for_model(cls, catalog: Catalog, model_id: int) -> EmbeddingIndex:
        """The cached index brought up to date with the catalog (and saved again if it changed)."""
        index = cls._cached(catalog, model_id) or cls(model_id, np.zeros(0, dtype="S64"),
                                                       np.zeros((0, 0), dtype=np.float32), 0)
        with catalog.read() as conn:
            new = rows(conn, "SELECT rowid, hash, embedding FROM predictions WHERE model_id = :m AND rowid > :r "
                             "AND embedding IS NOT NULL ORDER BY rowid", {"m": model_id, "r": index.max_rowid})
        if new:
            index = index._with(new)
            index._save(catalog)
        return index

    def _with(self, new: list[dict[str, Any]]) -> EmbeddingIndex:
        """This index with new or replaced predictions (INSERT OR REPLACE gives a row a new rowid)."""
        vectors = unit_rows(decode_embeddings([r["embedding"] for r in new]))
        new_hashes = np.array([r["hash"].encode() for r in new], dtype="S64")
        position = {h: i for i, h in enumerate(self.hashes.tolist())}
        replaced = [(position[h], i) for i, h in enumerate(new_hashes.tolist()) if h in position]
        matrix = np.array(self.matrix) if self.matrix.size else np.zeros((0, vectors.shape[1]), np.float32)
        for old, i in replaced:
            matrix[old] = vectors[i]
        added = [i for i, h in enumerate(new_hashes.tolist()) if h not in position]
        return EmbeddingIndex(self.model_id, np.concatenate([self.hashes, new_hashes[added]]),
                              np.concatenate([matrix, vectors[added]]), max(r["rowid"] for r in new))

    @classmethod
    def _cached(cls, catalog: Catalog, model_id: int) -> EmbeddingIndex | None:
        folder = index_dir(catalog)
        meta = folder / f"model-{model_id}.json"
        if not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
            matrix = np.load(folder / info["matrix"], mmap_mode="r")
            hashes = np.load(folder / info["hashes"], mmap_mode="r")
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is rebuilt from the catalog
        if matrix.shape[0] != hashes.shape[0]:
            return None
        return cls(model_id, hashes, matrix, int(info["max_rowid"]))

    def _save(self, catalog: Catalog) -> None:
        """Write the matrix and hashes under new names, then point the metadata at them (atomic)."""
        folder = index_dir(catalog)
        folder.mkdir(exist_ok=True)
        stem = f"model-{self.model_id}-{self.max_rowid}"
        np.save(folder / f"{stem}.npy", np.ascontiguousarray(self.matrix, dtype=np.float32))
        np.save(folder / f"{stem}.hashes.npy", self.hashes)
        meta = folder / f"model-{self.model_id}.json"
        old = json.loads(meta.read_text()) if meta.is_file() else None
        write_whole(meta, json.dumps({"matrix": f"{stem}.npy", "hashes": f"{stem}.hashes.npy",
                                      "max_rowid": self.max_rowid}))
        if old and old["matrix"] != f"{stem}.npy":
            for name in (old["matrix"], old["hashes"]):
                (folder / name).unlink(missing_ok=True)

    def vector_of(self, digest: str) -> np.ndarray | None:
        found = np.flatnonzero(self.hashes == digest.encode())
        return np.asarray(self.matrix[found[0]]) if found.size else None

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None,
                exclude: str | None = None) -> list[tuple[str, float]]:
        """The k most similar hashes and their cosine distance (0 = same direction), best first."""
        if not len(self.hashes):
            return []
        query = unit_rows(np.asarray(vector, dtype=np.float32)[None, :])[0]
        scores = np.asarray(self.matrix @ query, dtype=np.float32)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        if exclude is not None:
            scores[self.hashes == exclude.encode()] = -np.inf
        take = min(k, int(np.isfinite(scores).sum()))
        if take <= 0:
            return []
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.hashes[i].decode(), float(1.0 - scores[i])) for i in top]


def forget_index(catalog: Catalog, model_id: int) -> None:
    """Remove a retired model's cached index (a later model could be given its id)."""
    folder = index_dir(catalog)
    for path in [*folder.glob(f"model-{model_id}.json"), *folder.glob(f"model-{model_id}-*.npy")]:
        path.unlink(missing_ok=True)


def active_model_id(catalog: Catalog) -> int:
    with catalog.read() as conn:
        model_id = conn.exec_driver_sql("SELECT model_id FROM embedding_model").scalar()
    if model_id is None:
        raise DrumcatError("no model has classified this catalog yet; run `drumcat infer` first")
    return int(model_id)


def embed_file(catalog: Catalog, model_id: int, path: Path) -> np.ndarray:
    """The embedding of a file that is not in the catalog, by the model the catalog's index is of."""
    from drumcat.model.bundle import load_bundle
    from drumcat.model.pipeline import featurize

    with catalog.read() as conn:
        model_path = conn.exec_driver_sql("SELECT path FROM models WHERE id = ?", (model_id,)).scalar()
    bundle = load_bundle(Path(model_path))
    _, features, errors = featurize([(str(path), str(path))], bundle.card.features)
    if errors:
        raise DrumcatError(f"{path}: nothing to compare: {errors[0][2]}")  # unreadable, or silent
    return bundle.predict(features)[1][0]


def similar(catalog: Catalog, path_or_hash: str, *, k: int = 10, folder: str | None = None,
            changes: RuleChanges | None = None) -> dict[str, Any]:
    """The k nearest sounds to a catalogued sound (by path or hash) or to any audio file, optionally only
    those the views put in `folder`; described as the views (with this command's rules) see them."""
    if k < 1:
        raise DrumcatError(f"-k {k}: ask for at least one neighbour")
    model_id = active_model_id(catalog)
    index = EmbeddingIndex.for_model(catalog, model_id)
    with catalog.read() as conn:
        try:
            digest: str | None = resolve_hash(conn, path_or_hash)
        except DrumcatError:
            digest = None
    vector = index.vector_of(digest) if digest else None
    if vector is None:
        candidate = Path(path_or_hash).expanduser()
        if not candidate.is_file():
            raise DrumcatError(f"{path_or_hash}: not a catalogued sound with a result, a content hash, nor a file")
        vector = embed_file(catalog, model_id, candidate)
    with rules_for_this_command(catalog, changes) as conn:
        allowed = None
        if folder is not None:
            members = {r["hash"].encode() for r in rows(conn, "SELECT hash FROM routed WHERE folder = :f",
                                                         {"f": folder})}
            allowed = np.isin(index.hashes, np.array(sorted(members), dtype="S64"))
        found = index.nearest(vector, k, allowed, exclude=digest)
        placeholders = ", ".join(f":h{i}" for i in range(len(found))) or "NULL"
        # each neighbour by index lookups (joining unique_files would group every file of the catalog)
        described = {r["hash"]: r for r in rows(conn, f"""
            SELECT r.hash, r.label, r.confidence, r.folder,
                   (SELECT min(p.path) FROM present_files p WHERE p.hash = r.hash) AS path
            FROM routed r WHERE r.hash IN ({placeholders})""",
                                                {f"h{i}": h for i, (h, _) in enumerate(found)})}
    neighbours = [{"rank": rank, "distance": round(distance, 4), "label": described[h]["label"],
                   "confidence": round(described[h]["confidence"], 3), "folder": described[h]["folder"],
                   "path": described[h]["path"], "hash": h}
                  for rank, (h, distance) in enumerate(found, start=1) if described.get(h, {}).get("path")]
    return {"query": path_or_hash, "hash": digest, "model_id": model_id, "neighbours": neighbours}

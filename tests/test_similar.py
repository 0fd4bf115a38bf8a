"""`drumcat similar`: nearest sounds by the stored embeddings, checked against a plain numpy cosine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from drumcat.commands.infer import infer
from drumcat.commands.similar import EmbeddingIndex, active_model_id, index_dir, similar
from drumcat.errors import DrumcatError
from drumcat.model.bundle import ModelBundle
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.results import CLOSE_QUANTILE, close_similarity, decode_embeddings, unit_rows


@pytest.fixture
def inferred(catalog: Catalog, scanned: Path, bundle: ModelBundle) -> Catalog:
    infer(catalog, bundle, workers=1)
    return catalog


def stored(catalog: Catalog) -> tuple[list[str], np.ndarray]:
    with catalog.read() as conn:
        found = rows(conn, "SELECT hash, embedding FROM predictions ORDER BY hash")
    return [r["hash"] for r in found], decode_embeddings([r["embedding"] for r in found])


def test_neighbours_are_the_cosine_nearest_and_exclude_the_query(inferred: Catalog) -> None:
    hashes, embeddings = stored(inferred)
    query = hashes[3]
    result = similar(inferred, query, k=5)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    distances = 1 - unit @ unit[3]
    expected = [hashes[i] for i in np.argsort(distances, kind="stable") if hashes[i] != query][:5]
    assert [n["hash"] for n in result["neighbours"]] == expected
    assert [n["distance"] for n in result["neighbours"]] == pytest.approx(
        [distances[hashes.index(h)] for h in expected], abs=1e-4)
    assert all(Path(n["path"]).is_file() for n in result["neighbours"])


def test_folder_keeps_only_that_folders_sounds(inferred: Catalog) -> None:
    with inferred.read() as conn:
        folder_of = {r["hash"]: r["folder"] for r in rows(conn, "SELECT hash, folder FROM routed")}
    folder = max(set(folder_of.values()), key=list(folder_of.values()).count)
    result = similar(inferred, next(iter(folder_of)), k=50, folder=folder)
    assert result["neighbours"] and {n["folder"] for n in result["neighbours"]} == {folder}


def test_a_file_outside_the_catalog_is_embedded_on_the_fly(inferred: Catalog, scanned: Path,
                                                           tmp_path: Path) -> None:
    original = next(scanned.rglob("snare1.*"))
    outside = tmp_path / "elsewhere" / f"copy{original.suffix}"
    outside.parent.mkdir()
    shutil.copyfile(original, outside)
    with open(outside, "ab") as handle:  # another content hash, the same sound
        handle.write(b"\0")
    result = similar(inferred, str(outside), k=1)
    assert result["hash"] is None
    assert Path(result["neighbours"][0]["path"]).name == original.name
    assert result["neighbours"][0]["distance"] < 1e-3


def test_the_index_is_cached_and_updated_incrementally(inferred: Catalog, scanned: Path,
                                                       bundle: ModelBundle) -> None:
    model_id = active_model_id(inferred)
    first = EmbeddingIndex.for_model(inferred, model_id)
    assert len(first.hashes) == len(stored(inferred)[0])
    from drumcat.audio.synth import render, write_sample
    from drumcat.commands.scan import scan
    from drumcat.config import ScanConfig

    write_sample(scanned / "new" / "late.wav", render("Kick", seed=999))
    scan(inferred, [scanned], ScanConfig(workers=1))
    infer(inferred, bundle, workers=1)
    cached = EmbeddingIndex._cached(inferred, model_id)
    assert cached is not None and cached.max_rowid == first.max_rowid  # the cache is the old one...
    updated = EmbeddingIndex.for_model(inferred, model_id)  # ...until it reads the one new row
    assert len(updated.hashes) == len(first.hashes) + 1 and updated.max_rowid > first.max_rowid
    np.testing.assert_array_equal(updated.matrix[: len(first.hashes)], first.matrix)
    assert len(list(index_dir(inferred).glob("*.npy"))) == 2  # the superseded files are removed


def test_bad_queries_are_one_line_errors(inferred: Catalog, tmp_path: Path) -> None:
    with pytest.raises(DrumcatError, match="nor a file"):
        similar(inferred, str(tmp_path / "nope.wav"))
    with pytest.raises(DrumcatError, match="at least one"):
        similar(inferred, "x", k=0)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(22_050, dtype=np.float32), 22_050)
    with pytest.raises(DrumcatError, match="silent.wav: nothing to compare: silent: nothing above -60 dBFS"):
        similar(inferred, str(silent))


def test_an_uninferred_catalog_says_to_infer_first(catalog: Catalog) -> None:
    with pytest.raises(DrumcatError, match="run `drumcat infer` first"):
        similar(catalog, "x")


@given(size=st.integers(0, 64), seed=st.integers(0, 2**32 - 1))
def test_the_close_radius_is_the_quantile_of_the_pairs_above_the_diagonal(size: int, seed: int) -> None:
    """Every unordered pair once, the sound itself never: the reference takes np.triu_indices."""
    population = unit_rows(np.random.default_rng(seed).normal(size=(size, 8)))
    if size < 2:
        assert close_similarity(population) == 1.0
        return
    pairs = (population @ population.T)[np.triu_indices(size, k=1)]
    position = int(CLOSE_QUANTILE * (pairs.size - 1))
    assert close_similarity(population) == np.sort(pairs)[position]

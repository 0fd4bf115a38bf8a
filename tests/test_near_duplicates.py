"""Near-duplicates: every kind of re-encoding of a sound is found, distinct recordings are never merged,
and a tree with dedup 'near' keeps the best copy of each group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.near_duplicates import HYDROGEN_KITS, TRANSFORMS, original, precision, recall, write_transformed
from drumcat.audio.fingerprint import BANDS, FRAMES, MAX_DISTANCE_DB, as_db, distance, fingerprints
from drumcat.audio.pair_search import (
    BLOCK_ROWS,
    CANDIDATE_COSINE,
    LENGTH_RATIO,
    LENGTH_SLACK_S,
    batched_distances,
    candidate_pairs,
    close_pairs,
    coarse,
    could_be_close,
    level_ranges,
    levels,
)
from drumcat.commands.materialize import materialize
from drumcat.commands.near_duplicates import find_near_duplicates
from drumcat.commands.scan import scan
from drumcat.config import ScanConfig
from drumcat.storage.catalog import Catalog, rows
from drumcat.storage.rules import RuleChanges
from tests.helpers import record_predictions


def test_every_transformation_is_found_and_distinct_sounds_are_not_merged(tmp_path: Path) -> None:
    result = recall([original(i) for i in range(12)], tmp_path)
    assert result["all"] >= 0.98, result
    assert all(result[name] >= 0.9 for name in TRANSFORMS), result
    assert result["originals merged"] == 0.0


def test_a_short_hit_is_found_with_more_or_less_silence_before_it(tmp_path: Path, catalog: Catalog) -> None:
    """An 80 ms hit and its copies with 20 ms more silence before it, or 9 ms less: durations apart by more than
    LENGTH_RATIO allows (1.25), which kept real drum machines' short hats and rims from their padded copies."""
    hit = original(4)[: int(0.08 * 44_100)] * np.linspace(1, 0, int(0.08 * 44_100))[:, None]
    folder = tmp_path / "archive"
    folder.mkdir()
    sf.write(str(folder / "hit.wav"), hit, 44_100)
    sf.write(str(folder / "padded.wav"), np.concatenate([np.zeros((882, 2)), hit]), 44_100)
    sf.write(str(folder / "trimmed.wav"), hit[397:], 44_100)
    scan(catalog, [folder], ScanConfig(workers=1))
    find_near_duplicates(catalog, workers=1)
    assert group_sets(catalog) == {frozenset({"hit.wav", "padded.wav", "trimmed.wav"})}


@pytest.mark.skipif(not HYDROGEN_KITS.is_dir(), reason="no Hydrogen kits here (Debian's hydrogen-data; "
                                                       "`make test` installs it as root)")
def test_distinct_velocity_layers_of_the_debian_kits_are_never_merged(tmp_path: Path) -> None:
    pairs, merged = precision(tmp_path)
    assert pairs > 0 and merged == 0


def test_a_fingerprint_is_blind_to_gain_and_sees_a_different_hit() -> None:
    hit = original(3).mean(axis=1)
    other = original(11).mean(axis=1)
    a, quieter, b = (as_db(f) for f in fingerprints([hit, 0.1 * hit, other], 22_050))
    assert a.shape == (BANDS, FRAMES)
    assert distance(a, quieter) < 0.05 and distance(a, b) > 2.0


def test_near_dedup_keeps_the_best_copy_of_each_group(tmp_path: Path, catalog: Catalog) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    versions = write_transformed(folder, 0, original(5))
    write_transformed(folder, 1, original(9))
    scan(catalog, [folder], ScanConfig(workers=1))
    with catalog.read() as conn:
        hashes = [r["hash"] for r in rows(conn, "SELECT hash FROM unique_files")]
    record_predictions(catalog, {h: {"Snare": 0.9} for h in hashes})
    counts = find_near_duplicates(catalog, workers=1)
    assert counts["groups"] == 2 and counts["in_groups"] == len(hashes)
    summary = materialize(catalog, "organized_default", tmp_path / "tree", changes=RuleChanges(dedup="near"))
    assert summary.files == 2  # one per recording, not 22
    kept = {Path(src).name for src in (tmp_path / "tree" / "Snare").iterdir() for src in [src.resolve()]}
    assert versions["original"].name in kept  # the 24-bit 44.1 kHz WAV, not the MP3 or the 16-bit copy
    exact = materialize(catalog, "organized_default", tmp_path / "tree2", changes=RuleChanges(dedup="exact"))
    assert exact.files == len(hashes)


def test_fingerprints_are_computed_once_per_sound(tmp_path: Path, catalog: Catalog) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    write_transformed(folder, 0, original(1))
    scan(catalog, [folder], ScanConfig(workers=1))
    assert find_near_duplicates(catalog, workers=1)["fingerprinted"] == 11
    reported: dict[str, list[int]] = {"compare_total": [], "compared": []}
    counts = find_near_duplicates(catalog, workers=1, on_compare_total=reported["compare_total"].append,
                                  on_compared=reported["compared"].append)
    assert counts["fingerprinted"] == 0
    assert reported["compare_total"] == [0] and sum(reported["compared"]) == 0  # nothing new to compare
    assert counts["groups"] == 1 and counts["in_groups"] == 11  # regrouped from the pairs found before


def group_sets(catalog: Catalog) -> set[frozenset[str]]:
    """The near-duplicate groups as sets of file names."""
    with catalog.read() as conn:
        found = rows(conn, "SELECT group_id, path FROM near_duplicates")
    groups: dict[int, set[str]] = {}
    for row in found:
        groups.setdefault(row["group_id"], set()).add(Path(row["path"]).name)
    return {frozenset(members) for members in groups.values()}


def test_a_regroup_compares_only_new_sounds_and_groups_as_a_fresh_catalog(tmp_path: Path, catalog: Catalog) -> None:
    """A pack added after a regroup is compared with the sounds before it, not everything again, and the
    groups are those of a catalog that scanned it all at once; a sound whose file was gone while a copy of it
    came in joins that copy when it comes back (it was compared with the copy while it was away)."""
    folder, away = tmp_path / "archive", tmp_path / "away"
    folder.mkdir()
    away.mkdir()
    write_transformed(folder, 0, original(11))
    sf.write(folder / "lone.wav", original(13), 44_100, subtype="PCM_24")
    scan(catalog, [folder], ScanConfig(workers=1))
    assert find_near_duplicates(catalog, workers=1)["compared"] == 12
    (folder / "lone.wav").rename(away / "lone.wav")
    write_transformed(folder, 1, original(12))
    sf.write(folder / "copy-of-lone.wav", original(13) * 0.8, 44_100, subtype="PCM_16")
    scan(catalog, [folder], ScanConfig(workers=1))
    reported: list[int] = []
    counts = find_near_duplicates(catalog, workers=1, on_compared=reported.append)
    assert counts["compared"] == 12 and sum(reported) == 12  # the second original's 11 and the copy
    (away / "lone.wav").rename(folder / "lone.wav")
    scan(catalog, [folder], ScanConfig(workers=1))
    assert find_near_duplicates(catalog, workers=1)["compared"] == 0  # compared before it went
    fresh = Catalog(tmp_path / "fresh.db", create=True)
    scan(fresh, [folder], ScanConfig(workers=1))
    find_near_duplicates(fresh, workers=1)
    assert group_sets(catalog) == group_sets(fresh)
    assert frozenset({"lone.wav", "copy-of-lone.wav"}) in group_sets(catalog) and len(group_sets(catalog)) == 3


def test_a_stopped_comparison_resumes_where_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after two blocks of the search (Ctrl-C), a regroup has kept what they found; the next run
    compares only the rest and gives the groups of a run that was never stopped."""
    from bench.duplicates_memory import build_catalog
    from drumcat.commands import near_duplicates

    build_catalog(tmp_path / "catalog.db", 10_000)  # synthetic fingerprints: ten blocks of the search
    catalog = Catalog(tmp_path / "catalog.db")
    monkeypatch.setattr(near_duplicates, "STORE_EVERY_S", 0.0)  # store after every block
    done: list[int] = []

    def stop_after_two_blocks(sounds: int) -> None:
        done.append(sounds)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        find_near_duplicates(catalog, workers=1, on_compared=stop_after_two_blocks)
    assert 0 < sum(done) < 10_000
    resumed = find_near_duplicates(catalog, workers=1)
    assert resumed["compared"] == 10_000 - sum(done)
    near_duplicates.forget_comparisons(catalog)
    groups = group_sets(catalog)
    whole = find_near_duplicates(catalog, workers=1)
    assert whole["compared"] == 10_000 and group_sets(catalog) == groups and whole["groups"] == resumed["groups"] > 0
    with catalog.read() as conn:  # numbered in order of their first path, whatever order the sounds were read in
        firsts = [r["first"] for r in rows(conn, "SELECT group_id, min(path) AS first FROM near_duplicates "
                                                 "GROUP BY group_id ORDER BY group_id")]
    assert firsts == sorted(firsts) and len(firsts) == whole["groups"]


def test_a_changed_comparison_compares_again_and_drops_what_the_old_one_stored(tmp_path: Path,
                                                                               catalog: Catalog) -> None:
    """Pairs stored under another comparison (an older recipe or threshold) are not reused, and not kept."""
    from drumcat.commands import near_duplicates

    folder = tmp_path / "archive"
    folder.mkdir()
    write_transformed(folder, 0, original(2))
    scan(catalog, [folder], ScanConfig(workers=1))
    find_near_duplicates(catalog, workers=1)
    with catalog.connect() as conn:  # as an older drumcat would have left them
        for table in ("near_duplicate_pairs", "near_duplicate_compared"):
            conn.exec_driver_sql(f"UPDATE {table} SET comparison = 'older'")
    counts = find_near_duplicates(catalog, workers=1)
    assert counts["compared"] == 11 and counts["groups"] == 1
    with catalog.read() as conn:
        comparisons = {r["comparison"] for table in ("near_duplicate_pairs", "near_duplicate_compared")
                       for r in rows(conn, f"SELECT DISTINCT comparison FROM {table}")}
    assert comparisons == {near_duplicates.COMPARISON_ID}


def quantized_prints(count: int, seed: int) -> np.ndarray:
    """Fingerprints of `count` variations on a few decaying hits: loud and quiet cells, many pairs alike,
    some a fraction of a dB apart, so that pairs fall on both sides of MAX_DISTANCE_DB and near it."""
    rng = np.random.default_rng(seed)
    bands, frames = np.arange(BANDS)[:, None], np.arange(FRAMES)[None, :]
    hits = [240 - (2 + rng.uniform(0, 6)) * frames - rng.uniform(0, 3) * bands for _ in range(4)]
    rows = [hits[i % 4] + rng.normal(0, rng.choice([0.5, 2.0, 4.0]), (BANDS, FRAMES)) for i in range(count)]
    return np.clip(np.round(rows), 0, 240).astype(np.uint8).reshape(count, -1)


def test_batched_distances_are_distance_for_every_pair() -> None:
    prints = quantized_prints(40, seed=1)
    prints[0] = 0  # silent: no audible cell against another silent one
    prints[1] = 0
    pairs = np.array([(a, b) for a in range(40) for b in range(a + 1, 40)])
    expected = np.array([distance(as_db(prints[a]), as_db(prints[b])) for a, b in pairs])
    batched = batched_distances(prints, pairs)
    assert np.isinf(batched[0]) and np.isinf(expected[0])
    np.testing.assert_allclose(batched[1:], expected[1:], atol=1e-4)


def test_close_pairs_are_the_pairs_distance_keeps() -> None:
    """The batched path keeps exactly the pairs one `distance` call per candidate kept, whatever the size
    of the candidate search's blocks."""
    prints, lengths = quantized_prints(300, seed=2), np.full(300, 0.5)
    ranges = level_ranges(levels(prints))
    candidates = candidate_pairs(coarse(prints), lengths, ranges=ranges)
    np.testing.assert_array_equal(candidate_pairs(coarse(prints), lengths, block_cells=7 * 300, ranges=ranges,
                                                  block_rows=7), candidates)
    expected = {(a, b) for a, b in candidates.tolist()
                if distance(as_db(prints[a]), as_db(prints[b])) <= MAX_DISTANCE_DB}
    close, checked = close_pairs(prints, lengths)
    assert checked == len(candidates) and 0 < len(expected) < len(candidates)
    assert set(close) == expected


def test_the_candidate_search_finds_every_pair_of_alike_summaries_and_durations() -> None:
    """Sorted by duration, each block is compared only with the durations it can reach; the pairs are the
    ones a comparison of every pair finds (durations from 0, unknown, to several seconds, many alike)."""
    prints = quantized_prints(400, seed=3)
    durations = [0.0, 0.0005, 0.05, 0.1, 0.16, 0.18, 0.3, 0.33, 0.36, 1.0, 1.2, 1.21, 4.0]
    lengths = np.random.default_rng(3).choice(durations, 400)
    vectors = coarse(prints)
    cosines = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    # float32 products of other shapes round differently: a pair this near the threshold may fall either side
    settled = np.abs(cosines - CANDIDATE_COSINE) > 1e-5
    longer, shorter = np.maximum.outer(lengths, lengths), np.minimum.outer(lengths, lengths)
    alike = longer <= LENGTH_RATIO * np.maximum(shorter, 1e-3) + LENGTH_SLACK_S
    expected = np.argwhere(np.triu((cosines >= CANDIDATE_COSINE) & alike & settled, k=1))  # row-major, a < b
    assert (~settled).mean() < 0.001

    def unsettled_left_out(found: np.ndarray) -> np.ndarray:
        return found[settled[found[:, 0], found[:, 1]]]

    ranges = level_ranges(levels(prints))
    overlapping = expected[ranges.overlap(expected[:, 0], expected[:, 1])]
    assert 0 < len(overlapping) < len(expected)
    new = np.random.default_rng(4).random(400) < 0.2  # a few new sounds: only the pairs with one of them
    sizes = [(BLOCK_ROWS, 1 << 24), (5, 5 * 400), (1, 400), (1, 1)]  # (block_rows, block_cells)
    for searched, given in ((expected, None), (overlapping, ranges)):
        with_new = searched[new[searched[:, 0]] | new[searched[:, 1]]]
        for per_block, cells in sizes:
            found = candidate_pairs(vectors, lengths, block_cells=cells, ranges=given, block_rows=per_block)
            np.testing.assert_array_equal(unsettled_left_out(found), searched)
            found = candidate_pairs(vectors, lengths, block_cells=cells, new=new, ranges=given, block_rows=per_block)
            np.testing.assert_array_equal(unsettled_left_out(found), with_new)


def test_close_pairs_of_new_sounds_complete_those_of_the_others() -> None:
    """The pairs among the sounds compared before, plus the pairs with a new sound, are every pair."""
    prints, lengths = quantized_prints(300, seed=6), np.random.default_rng(6).choice([0.2, 0.22, 0.5], 300)
    new = np.random.default_rng(7).random(300) < 0.3
    everything, _ = close_pairs(prints, lengths)
    before, _ = close_pairs(prints[~new], lengths[~new])
    old_index = np.flatnonzero(~new)
    earlier = {(int(old_index[a]), int(old_index[b])) for a, b in before}
    now, _ = close_pairs(prints, lengths, new=new)
    assert earlier.isdisjoint(now) and earlier | set(now) == set(everything)
    assert earlier and now


def shifted_copies(count: int, seed: int) -> np.ndarray:
    """Pairs (rows 2k, 2k+1) of one fast-decaying hit, the second a frame later or earlier, with a little noise:
    a loud onset frame and silent last frames, as a short hit's fingerprint has, so that their sums over all
    frames are too far apart and only a shift of +1 or -1, read the right way round, brings them close."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        hit = 240 - rng.uniform(6, 10) * np.arange(FRAMES + 1)[None, :] - rng.uniform(0, 1) * np.arange(BANDS)[:, None]
        first, second = (hit[:, 1:], hit[:, :-1]) if index % 2 else (hit[:, :-1], hit[:, 1:])
        rows += [first, second + rng.normal(0, rng.choice([0.5, 2.0]), second.shape)]
    return np.clip(np.round(rows), 0, 240).astype(np.uint8).reshape(2 * count, -1)


def short_hits_and_copies(count: int, seed: int) -> np.ndarray:
    """Hits of random spectra, many of them short, with most cells below the audible floor, each followed by
    a copy a step or two off in every cell: the audible cells bound the distance most here."""
    from bench.duplicates_memory import synthetic_prints

    rng = np.random.default_rng(seed)
    hits = synthetic_prints(count, rng).astype(np.int16)
    copies = hits + rng.integers(-2, 3, hits.shape)
    return np.clip(np.stack([hits, copies], axis=1).reshape(2 * count, -1), 0, 240).astype(np.uint8)


@pytest.mark.parametrize("prints", [quantized_prints(300, seed=4), shifted_copies(60, seed=5),
                                    short_hits_and_copies(150, seed=6)],
                         ids=["variations", "shifted copies", "short hits"])
def test_the_level_sum_bound_never_drops_a_pair_distance_keeps(prints: np.ndarray) -> None:
    """could_be_close is a bound: every pair within MAX_DISTANCE_DB passes it (at the shift that brings it
    there, so a shift read the wrong way round drops the shifted copies), and pairs far apart do not."""
    pairs = np.array([(a, b) for a in range(len(prints)) for b in range(a + 1, len(prints))])
    kept = np.array([distance(as_db(prints[a]), as_db(prints[b])) <= MAX_DISTANCE_DB for a, b in pairs])
    possible = could_be_close(levels(prints), pairs, step=1000)
    assert kept.sum() > len(prints) // 4
    assert possible[kept].all()
    assert not possible.all()
    overlapping = level_ranges(levels(prints)).overlap(pairs[:, 0], pairs[:, 1])  # what the search lets through
    assert overlapping[possible].all()


def test_level_ranges_do_not_depend_on_how_many_sounds_are_taken_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """level_ranges goes SOUNDS_AT_ONCE sounds at a time: the ranges are those of all the sounds at once."""
    from drumcat.audio import pair_search

    found = levels(short_hits_and_copies(50, seed=8))
    whole = level_ranges(found)
    monkeypatch.setattr(pair_search, "SOUNDS_AT_ONCE", 7)
    in_parts = level_ranges(found)
    np.testing.assert_array_equal(in_parts.low, whole.low)
    np.testing.assert_array_equal(in_parts.high, whole.high)

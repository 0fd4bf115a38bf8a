-- 0012: near-duplicate pairs kept between runs. Whether two sounds are one recording depends on their
-- content alone (their fingerprints and durations, keyed by content hash), so a pair found once stays
-- true: `drumcat duplicates` compares only the sounds that are new since its last run with the others,
-- instead of every pair of the catalog again, and regroups from the stored pairs.

-- Every pair of sounds found to be one recording, whether or not their files are present now.
CREATE TABLE near_duplicate_pairs (
    comparison  TEXT NOT NULL,   -- the fingerprint recipe and thresholds that found it (a digest)
    hash_a      TEXT NOT NULL,   -- hash_a < hash_b
    hash_b      TEXT NOT NULL,
    distance_db REAL NOT NULL,
    PRIMARY KEY (comparison, hash_a, hash_b)
) WITHOUT ROWID;

-- The sounds compared with each other: every pair of them within the threshold is in near_duplicate_pairs.
-- A sound whose files are all gone stays in this set and is compared with the sounds that come in after,
-- so its pairs are known if it comes back. A first regroup records its sounds here as it goes, so one that
-- was stopped resumes.
CREATE TABLE near_duplicate_compared (
    comparison  TEXT NOT NULL,
    hash        TEXT NOT NULL,
    compared_at TEXT NOT NULL,
    PRIMARY KEY (comparison, hash)
) WITHOUT ROWID;

-- 0009: near-duplicates. The same recording re-encoded, resampled, at another bit depth or gain, with
-- a trimmed or padded start, or mixed to mono, has another content hash but the same fingerprint
-- (drumcat/audio/fingerprint.py); near_duplicate_groups says which sounds are one recording, and the dedup
-- rule gains a third value: 'exact' (one file per content hash), 'near' (one per near-duplicate group),
-- 'off' (every copy).

CREATE TABLE fingerprints (
    hash        TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,     -- 32 bands x 40 frames of log-mel, 1/3 dB steps (drumcat/audio/fingerprint.py)
    recipe      TEXT NOT NULL,     -- which fingerprint recipe made it: only equal recipes are compared
    computed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Sounds found to be one recording; a sound in no group has no near-duplicate.
CREATE TABLE near_duplicate_groups (
    hash           TEXT PRIMARY KEY,
    group_id       INTEGER NOT NULL,   -- the same for every member
    representative INTEGER NOT NULL CHECK (representative IN (0, 1)),  -- the one a 'near' tree keeps
    distance_db    REAL NOT NULL       -- to the representative (0 for it)
) WITHOUT ROWID;
CREATE INDEX near_duplicate_groups_group ON near_duplicate_groups(group_id);

UPDATE settings SET value = CASE value WHEN '0' THEN 'off' WHEN 'near' THEN 'near' ELSE 'exact' END,
                    note = 'exact = one file per content hash in trees, near = one per near-duplicate group, off = every copy'
WHERE key = 'dedup';

DROP VIEW organized_full;
DROP VIEW organized_default;
DROP VIEW tree_files;
DROP VIEW rules;

CREATE VIEW rules AS
SELECT (SELECT CAST(value AS REAL) FROM settings WHERE key = 'threshold')        AS threshold,
       (SELECT CAST(value AS REAL) FROM settings WHERE key = 'uncertain_margin') AS uncertain_margin,
       (SELECT value FROM settings WHERE key = 'dedup')                          AS dedup,
       (SELECT value = '1' FROM settings WHERE key = 'allow_all')                AS allow_all;

-- Every near-duplicate group with its members' paths, the representative first.
CREATE VIEW near_duplicates AS
SELECT g.group_id, g.hash, u.path, g.representative, g.distance_db,
       (SELECT count(*) FROM near_duplicate_groups m WHERE m.group_id = g.group_id) AS members
FROM near_duplicate_groups g
JOIN unique_files u ON u.hash = g.hash
ORDER BY g.group_id, g.representative DESC, u.path;

-- The files a tree holds: one per hash (exact), one per near-duplicate group (near), or every copy (off).
CREATE VIEW tree_files AS
SELECT u.hash, u.path, u.name, u.copies FROM unique_files u
WHERE (SELECT dedup FROM rules) = 'exact'
   OR ((SELECT dedup FROM rules) = 'near'
       AND NOT EXISTS (SELECT 1 FROM near_duplicate_groups g WHERE g.hash = u.hash AND g.representative = 0))
UNION ALL
SELECT f.hash, f.path, f.name, 1 FROM present_files f WHERE (SELECT dedup FROM rules) = 'off';

CREATE VIEW organized_default AS
SELECT t.path AS src, r.folder || '/' || t.name AS dest,
       r.folder, r.label, r.core_label, r.confidence, r.overridden, t.hash, t.copies
FROM routed r
JOIN tree_files t ON t.hash = r.hash;

CREATE VIEW organized_full AS
SELECT t.path AS src,
       CASE WHEN r.below_threshold THEN 'misc' ELSE r.label END || '/' || t.name AS dest,
       r.label, r.core_label, r.confidence, r.overridden, t.hash, t.copies
FROM routed r
JOIN tree_files t ON t.hash = r.hash;

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('rules', 'the settings the views apply, one typed row: threshold, uncertain_margin, dedup (exact|near|off), allow_all'),
    ('near_duplicates', 'sounds that are one recording (re-encoded, resampled, gain, trim, mono): group, members, the one kept'),
    ('tree_files', 'the files a tree holds: one per hash (dedup exact), one per near-duplicate group (near), every copy (off)');

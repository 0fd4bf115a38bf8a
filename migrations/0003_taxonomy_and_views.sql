-- 0003: the reorganization layer. Rules are data (classes, canonical_map, target_labels, settings,
-- overrides) and views read them, so a threshold or a label set is a query, not a re-run.

-- Fine classes known to this catalog: the 34 of the taxonomy plus any a model's card brings.
CREATE TABLE classes (
    name TEXT PRIMARY KEY
);

-- Fine class -> canonical (core) class, or 'misc'.
CREATE TABLE canonical_map (
    fine      TEXT PRIMARY KEY,
    canonical TEXT NOT NULL
);

-- Canonical classes that get their own folder in the default tree; everything else goes to misc.
CREATE TABLE target_labels (
    label TEXT PRIMARY KEY
);

-- Parameters the views read. drumcat.toml (when present) writes them; sqlite3 users may edit them.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT,
    note  TEXT
);

-- Manual corrections keyed by content hash: they survive moves, renames and re-inference.
CREATE TABLE overrides (
    hash       TEXT PRIMARY KEY,
    label      TEXT NOT NULL,              -- a fine class, or 'misc'
    note       TEXT,
    created_at TEXT NOT NULL
);

-- One line per built-in view, listed by `drumcat views`.
CREATE TABLE view_notes (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

INSERT INTO classes (name) SELECT column1 FROM (VALUES
    ('Agogo'), ('Bell'), ('Bongo'), ('Cabasa'), ('China'), ('Clap'), ('Clave'), ('Conga'), ('Cowbell'), ('Crash'), ('Cuica'), ('Cymbal'), ('FX'), ('Guiro'), ('Hihat'), ('Kick'), ('Maracas'), ('Metal'), ('Noise'), ('Perc'), ('Reverse'), ('Rim'), ('Ride'), ('Shaker'), ('Sizzle'), ('Snare'), ('Splash'), ('Tambourine'), ('Timbale'), ('Timpani'), ('Tom'), ('Triangle'), ('Vibraslap'), ('Vox'));

INSERT INTO canonical_map (fine, canonical) VALUES
    ('Agogo', 'misc'),
    ('Bell', 'misc'),
    ('Bongo', 'misc'),
    ('Cabasa', 'misc'),
    ('China', 'Crash'),
    ('Clap', 'misc'),
    ('Clave', 'misc'),
    ('Conga', 'misc'),
    ('Cowbell', 'misc'),
    ('Crash', 'Crash'),
    ('Cuica', 'misc'),
    ('Cymbal', 'Crash'),
    ('FX', 'misc'),
    ('Guiro', 'misc'),
    ('Hihat', 'Hihat'),
    ('Kick', 'Kick'),
    ('Maracas', 'misc'),
    ('Metal', 'misc'),
    ('Noise', 'misc'),
    ('Perc', 'misc'),
    ('Reverse', 'misc'),
    ('Rim', 'Snare'),
    ('Ride', 'Ride'),
    ('Shaker', 'misc'),
    ('Sizzle', 'Crash'),
    ('Snare', 'Snare'),
    ('Splash', 'Crash'),
    ('Tambourine', 'misc'),
    ('Timbale', 'Tom'),
    ('Timpani', 'Tom'),
    ('Tom', 'Tom'),
    ('Triangle', 'misc'),
    ('Vibraslap', 'misc'),
    ('Vox', 'misc');

INSERT INTO target_labels (label) VALUES ('Crash'), ('Hihat'), ('Kick'), ('Ride'), ('Snare'), ('Tom');

INSERT INTO settings (key, value, note) VALUES
    ('active_model', NULL, 'models.id the views classify with; NULL = the newest model with predictions'),
    ('misc_threshold', '0.5', 'below this confidence a sample is routed to misc'),
    ('uncertain_margin', '0.15', 'top-two probability gap under which a sample is listed for review'),
    ('dedup', '1', '1 = organized trees hold one file per content hash'),
    ('allow_all', '0', '1 = the default tree has a folder per fine class (the reference --allow-all)');

-- The model whose predictions the views use.
CREATE VIEW active_model AS
SELECT coalesce(
    (SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'active_model' AND value IS NOT NULL),
    (SELECT max(model_id) FROM predictions)
) AS model_id;

-- The active model's prediction for each unique sound.
CREATE VIEW latest_predictions AS
SELECT p.hash, p.label, p.confidence, p.second_label, p.second_confidence,
       p.confidence - coalesce(p.second_confidence, 0) AS margin,
       m.name AS model, p.model_id, p.run_id, p.predicted_at
FROM predictions p
JOIN models m ON m.id = p.model_id
WHERE p.model_id = (SELECT model_id FROM active_model);

-- Fine label (override applied), its canonical label and confidence, per unique sound.
CREATE VIEW classified AS
SELECT lp.hash,
       coalesce(o.label, lp.label)                            AS label,
       coalesce(cm.canonical, 'misc')                         AS core_label,
       CASE WHEN o.label IS NULL THEN lp.confidence ELSE 1.0 END AS confidence,
       lp.label                                               AS predicted_label,
       lp.confidence                                          AS model_confidence,
       lp.second_label, lp.second_confidence, lp.margin,
       o.label IS NOT NULL                                    AS overridden,
       o.note                                                 AS override_note,
       lp.model
FROM latest_predictions lp
LEFT JOIN overrides o ON o.hash = lp.hash
LEFT JOIN canonical_map cm ON cm.fine = coalesce(o.label, lp.label);

-- Where each sound goes: below the threshold or outside the target labels -> misc.
CREATE VIEW routed AS
SELECT c.*,
       CASE
           WHEN NOT c.overridden AND c.confidence < (SELECT CAST(value AS REAL) FROM settings WHERE key = 'misc_threshold')
               THEN 'misc'
           WHEN (SELECT value FROM settings WHERE key = 'allow_all') = '1'
               THEN c.label
           WHEN c.core_label IN (SELECT label FROM target_labels)
               THEN c.core_label
           ELSE 'misc'
       END AS folder
FROM classified c;

-- One representative file per content hash: the first present, readable path in alphabetical order.
CREATE VIEW unique_files AS
SELECT hash, min(path) AS path, count(*) AS copies
FROM files
WHERE missing = 0 AND error IS NULL AND hash IS NOT NULL
GROUP BY hash;

-- The files a tree holds: one per hash when settings.dedup = '1', else every present copy.
CREATE VIEW tree_files AS
SELECT hash, path, copies FROM unique_files
WHERE (SELECT value FROM settings WHERE key = 'dedup') = '1'
UNION ALL
SELECT f.hash, f.path, 1 FROM files f
WHERE f.missing = 0 AND f.error IS NULL AND f.hash IS NOT NULL
  AND (SELECT value FROM settings WHERE key = 'dedup') <> '1';

-- The reference default tree: core folders plus misc. Follows the view contract (src, dest).
CREATE VIEW organized_default AS
SELECT t.path AS src,
       r.folder || '/' || replace(t.path, rtrim(t.path, replace(t.path, '/', '')), '') AS dest,
       r.folder, r.label, r.core_label, r.confidence, r.overridden, t.hash, t.copies
FROM routed r
JOIN tree_files t ON t.hash = r.hash;

-- The full tree: a folder per fine class (the reference --allow-all); low confidence still -> misc.
CREATE VIEW organized_full AS
SELECT t.path AS src,
       CASE WHEN NOT c.overridden
                 AND c.confidence < (SELECT CAST(value AS REAL) FROM settings WHERE key = 'misc_threshold')
            THEN 'misc' ELSE c.label END
       || '/' || replace(t.path, rtrim(t.path, replace(t.path, '/', '')), '') AS dest,
       c.label, c.core_label, c.confidence, c.overridden, t.hash, t.copies
FROM classified c
JOIN tree_files t ON t.hash = c.hash;

-- Samples worth a human look: low confidence, or a small gap between the top two classes.
CREATE VIEW uncertain AS
SELECT u.path AS src,
       'review/' || c.label || '/' || replace(u.path, rtrim(u.path, replace(u.path, '/', '')), '') AS dest,
       c.label, c.confidence, c.second_label, c.second_confidence, c.margin, c.hash
FROM classified c
JOIN unique_files u ON u.hash = c.hash
WHERE NOT c.overridden
  AND (c.confidence < (SELECT CAST(value AS REAL) FROM settings WHERE key = 'misc_threshold')
       OR c.margin < (SELECT CAST(value AS REAL) FROM settings WHERE key = 'uncertain_margin'));

INSERT INTO view_notes (name, description) VALUES
    ('catalog', 'present, readable files with their audio facts'),
    ('active_model', 'the models.id the views classify with'),
    ('latest_predictions', 'the active model''s top-1 label, confidence and runner-up per unique sound'),
    ('classified', 'fine label with overrides applied, its core label and confidence, per unique sound'),
    ('routed', 'classified plus the folder each sound goes to (threshold and target labels applied)'),
    ('unique_files', 'one representative path per content hash (first in alphabetical order) and its copy count'),
    ('tree_files', 'the files a tree holds: unique_files when dedup is on, every present copy otherwise'),
    ('organized_default', 'src/dest: core folders plus misc, deduplicated (the reference default tree)'),
    ('organized_full', 'src/dest: a folder per fine class, low confidence to misc (the reference --allow-all)'),
    ('uncertain', 'src/dest: samples to review, low confidence or a small top-two margin');

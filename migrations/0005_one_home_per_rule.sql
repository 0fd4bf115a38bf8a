-- 0005: one home per rule. Each rule the views apply is written once, and each view builds on the one
-- before it instead of repeating it:
--   present_files  the "present, readable file" rule and the file's base name (was written in 8 places)
--   rules          every setting the views read, typed, one row (the threshold had four names)
--   routed         applies the threshold once (below_threshold); organized_full, uncertain read it
-- The setting misc_threshold is renamed threshold: the same name in settings, drumcat.toml and the flags.

UPDATE settings SET key = 'threshold' WHERE key = 'misc_threshold';
UPDATE settings SET note = 'models.id the views classify with: set by the first infer, then by `drumcat model use` or `infer --use`'
WHERE key = 'active_model';

DROP VIEW uncertain;
DROP VIEW organized_full;
DROP VIEW organized_default;
DROP VIEW tree_files;
DROP VIEW unique_files;
DROP VIEW routed;
DROP VIEW classified;
DROP VIEW catalog;

-- Files that are present and readable, with their base name (the text after the last '/').
CREATE VIEW present_files AS
SELECT f.*,
       replace(f.path, rtrim(f.path, replace(f.path, '/', '')), '') AS name
FROM files f
WHERE f.missing = 0 AND f.error IS NULL AND f.hash IS NOT NULL;

-- The rules the views apply, one typed row.
CREATE VIEW rules AS
SELECT (SELECT CAST(value AS REAL) FROM settings WHERE key = 'threshold')        AS threshold,
       (SELECT CAST(value AS REAL) FROM settings WHERE key = 'uncertain_margin') AS uncertain_margin,
       (SELECT value = '1' FROM settings WHERE key = 'dedup')                    AS dedup,
       (SELECT value = '1' FROM settings WHERE key = 'allow_all')                AS allow_all;

-- Present, readable files with their audio facts: the starting point of most queries.
CREATE VIEW catalog AS
SELECT f.id AS file_id, f.path, f.rel_path, r.path AS root, f.ext, f.size, f.mtime, f.hash,
       a.format, a.subtype, a.sample_rate, a.channels, a.frames, a.duration, a.peak_db, a.rms_db
FROM present_files f
JOIN roots r ON r.id = f.root_id
JOIN audio a ON a.hash = f.hash;

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

-- Where each sound goes. The routing rules live here alone: below the threshold -> misc (an override
-- never is), a folder per fine class with allow_all, else the core label if it is a target, else misc.
-- model_folder is where the model's own label would send it (what the overrides change).
CREATE VIEW routed AS
SELECT c.*,
       (NOT c.overridden AND c.confidence < rules.threshold) AS below_threshold,
       CASE
           WHEN NOT c.overridden AND c.confidence < rules.threshold THEN 'misc'
           WHEN rules.allow_all THEN c.label
           WHEN c.core_label IN (SELECT label FROM target_labels) THEN c.core_label
           ELSE 'misc'
       END AS folder,
       CASE
           WHEN c.model_confidence < rules.threshold THEN 'misc'
           WHEN rules.allow_all THEN c.predicted_label
           WHEN model_map.canonical IN (SELECT label FROM target_labels) THEN model_map.canonical
           ELSE 'misc'
       END AS model_folder
FROM classified c CROSS JOIN rules
LEFT JOIN canonical_map model_map ON model_map.fine = c.predicted_label;

-- One representative file per content hash: the first present, readable path in alphabetical order.
-- (SQLite takes a bare column, here name, from the row min() chose: the representative's own name.)
CREATE VIEW unique_files AS
SELECT hash, min(path) AS path, name, count(*) AS copies
FROM present_files
GROUP BY hash;

-- The files a tree holds: one per hash when rules.dedup, else every present copy.
CREATE VIEW tree_files AS
SELECT u.hash, u.path, u.name, u.copies FROM unique_files u WHERE (SELECT dedup FROM rules)
UNION ALL
SELECT f.hash, f.path, f.name, 1 FROM present_files f WHERE NOT (SELECT dedup FROM rules);

-- The reference default tree: core folders plus misc. Follows the view contract (src, dest).
CREATE VIEW organized_default AS
SELECT t.path AS src, r.folder || '/' || t.name AS dest,
       r.folder, r.label, r.core_label, r.confidence, r.overridden, t.hash, t.copies
FROM routed r
JOIN tree_files t ON t.hash = r.hash;

-- The full tree: a folder per fine class (the reference --allow-all); low confidence still -> misc.
CREATE VIEW organized_full AS
SELECT t.path AS src,
       CASE WHEN r.below_threshold THEN 'misc' ELSE r.label END || '/' || t.name AS dest,
       r.label, r.core_label, r.confidence, r.overridden, t.hash, t.copies
FROM routed r
JOIN tree_files t ON t.hash = r.hash;

-- Samples worth a human look: below the threshold, or a small gap between the top two classes.
-- Lowest margin first (an ORDER BY in a view is kept by a plain SELECT * over it).
CREATE VIEW uncertain AS
SELECT u.path AS src, 'review/' || r.label || '/' || u.name AS dest,
       r.label, r.confidence, r.second_label, r.second_confidence, r.margin, r.hash
FROM routed r
JOIN unique_files u ON u.hash = r.hash
WHERE NOT r.overridden
  AND (r.below_threshold OR r.margin < (SELECT uncertain_margin FROM rules))
ORDER BY r.margin, u.path;

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('present_files', 'files that are present and readable, with their base name (name)'),
    ('rules', 'the settings the views apply, one typed row: threshold, uncertain_margin, dedup, allow_all'),
    ('routed', 'classified plus below_threshold, the folder each sound goes to, and the model_folder its model''s label alone gives'),
    ('unique_files', 'one representative path per content hash (first in alphabetical order), its name and copies'),
    ('uncertain', 'src/dest: samples to review (below the threshold or a small top-two margin), lowest margin first');

-- 0006: the active model is chosen, not inferred. `active_models` holds the model (or the models of an
-- ensemble) the views classify with; only the first `drumcat infer` of a catalog, `drumcat model use`
-- and `drumcat infer --use` change it, so trying a model never changes what the trees show.
-- An ensemble classifies with the mean of its members' calibrated probability vectors, class by class,
-- computed here from the stored vectors (nothing is re-inferred).

CREATE TABLE active_models (
    model_id INTEGER PRIMARY KEY REFERENCES models(id)
);

-- What the views showed before this migration stays what they show.
INSERT INTO active_models (model_id)
SELECT coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'active_model' AND value IS NOT NULL),
                (SELECT max(model_id) FROM predictions))
WHERE EXISTS (SELECT 1 FROM predictions);
DELETE FROM settings WHERE key = 'active_model';

DROP VIEW uncertain;
DROP VIEW organized_full;
DROP VIEW organized_default;
DROP VIEW routed;
DROP VIEW classified;
DROP VIEW latest_predictions;
DROP VIEW active_model;

-- The active model's id, one row per member of an ensemble.
CREATE VIEW active_model AS
SELECT model_id FROM active_models;

-- An ensemble's members' probabilities averaged per class, over the members that have a result for the
-- sound (members = how many; ensemble_gaps lists the sounds some members lack).
CREATE VIEW ensemble_probabilities AS
SELECT pr.hash, pr.class, avg(pr.probability) AS probability, count(*) AS members
FROM probabilities pr
WHERE pr.model_id IN (SELECT model_id FROM active_models)
GROUP BY pr.hash, pr.class;

CREATE VIEW ensemble_gaps AS
SELECT p.hash, count(*) AS members, (SELECT count(*) FROM active_models) AS models,
       group_concat(m.name, '+') AS with_results_from
FROM predictions p JOIN models m ON m.id = p.model_id
WHERE p.model_id IN (SELECT model_id FROM active_models)
GROUP BY p.hash
HAVING count(*) < (SELECT count(*) FROM active_models);

CREATE VIEW ensemble_ranked AS
SELECT hash, class, probability,
       row_number() OVER (PARTITION BY hash ORDER BY probability DESC, class) AS rank
FROM ensemble_probabilities;

-- The active model's top-1 and runner-up per unique sound: a single model's stored rows, or the
-- ensemble's mean vector ranked.
CREATE VIEW latest_predictions AS
SELECT p.hash, p.label, p.confidence, p.second_label, p.second_confidence,
       p.confidence - coalesce(p.second_confidence, 0) AS margin,
       m.name AS model, p.model_id, p.run_id, p.predicted_at
FROM predictions p
JOIN models m ON m.id = p.model_id
WHERE (SELECT count(*) FROM active_models) = 1 AND p.model_id = (SELECT model_id FROM active_models)
UNION ALL
SELECT first.hash, first.class, first.probability, second.class, second.probability,
       first.probability - coalesce(second.probability, 0),
       (SELECT group_concat(name, '+') FROM (SELECT name FROM models
        WHERE id IN (SELECT model_id FROM active_models) ORDER BY id)),
       NULL, NULL, NULL
FROM ensemble_ranked first
LEFT JOIN ensemble_ranked second ON second.hash = first.hash AND second.rank = 2
WHERE first.rank = 1 AND (SELECT count(*) FROM active_models) > 1;

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

CREATE VIEW routed AS
SELECT c.*,
       (NOT c.overridden AND c.confidence < rules.threshold) AS below_threshold,
       CASE
           WHEN NOT c.overridden AND c.confidence < rules.threshold THEN 'misc'
           WHEN rules.allow_all THEN c.label
           WHEN c.core_label IN (SELECT label FROM target_labels) THEN c.core_label
           ELSE 'misc'
       END AS folder
FROM classified c CROSS JOIN rules;

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

CREATE VIEW uncertain AS
SELECT u.path AS src, 'review/' || r.label || '/' || u.name AS dest,
       r.label, r.confidence, r.second_label, r.second_confidence, r.margin, r.hash
FROM routed r
JOIN unique_files u ON u.hash = r.hash
WHERE NOT r.overridden
  AND (r.below_threshold OR r.margin < (SELECT uncertain_margin FROM rules))
ORDER BY r.margin, u.path;

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('active_model', 'the models.id the views classify with (one row per member of an ensemble)'),
    ('latest_predictions', 'the active model''s (or ensemble''s mean) top-1 label, confidence and runner-up per sound'),
    ('ensemble_probabilities', 'an ensemble''s mean calibrated probability per sound and class, and how many members had it'),
    ('ensemble_gaps', 'sounds that only some of the ensemble''s models have a result for'),
    ('ensemble_ranked', 'ensemble_probabilities ranked per sound (rank 1 = the ensemble''s label)');

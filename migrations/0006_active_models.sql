-- 0006: the active model is chosen, not inferred, and it may be an ensemble.
-- settings.active_model is set by the first `drumcat infer` of a catalog; after that only
-- `drumcat model use` and `drumcat infer --use` change it, so trying a model never changes the trees.
-- An ensemble is a model row of its own whose results are the mean of its members' calibrated
-- probability vectors, class by class, computed by SQL from the stored vectors (ensemble_ranked, below)
-- and stored like any model's, so every view stays a plain join on predictions at any catalog size.

CREATE TABLE ensemble_members (
    ensemble_id INTEGER NOT NULL REFERENCES models(id),
    model_id    INTEGER NOT NULL REFERENCES models(id),
    PRIMARY KEY (ensemble_id, model_id)
);

-- What the views showed before this migration stays what they show.
UPDATE settings SET value = (SELECT CAST(max(model_id) AS TEXT) FROM predictions)
WHERE key = 'active_model' AND value IS NULL AND EXISTS (SELECT 1 FROM predictions);

DROP VIEW active_model;
CREATE VIEW active_model AS
SELECT CAST(value AS INTEGER) AS model_id FROM settings WHERE key = 'active_model' AND value IS NOT NULL;

-- The model whose embeddings stand for the active one: itself, or an ensemble's first member.
CREATE VIEW embedding_model AS
SELECT coalesce((SELECT min(e.model_id) FROM ensemble_members e WHERE e.ensemble_id = a.model_id),
                a.model_id) AS model_id
FROM active_model a;

-- Each ensemble's members' probabilities averaged per sound and class, over the members that have a
-- result for the sound (members = how many).
CREATE VIEW ensemble_probabilities AS
SELECT e.ensemble_id, pr.hash, pr.class, avg(pr.probability) AS probability, count(*) AS members
FROM ensemble_members e
JOIN probabilities pr ON pr.model_id = e.model_id
GROUP BY e.ensemble_id, pr.hash, pr.class;

CREATE VIEW ensemble_ranked AS
SELECT ensemble_id, hash, class, probability, members,
       row_number() OVER (PARTITION BY ensemble_id, hash ORDER BY probability DESC, class) AS rank
FROM ensemble_probabilities;

-- Sounds that only some of the active ensemble's members have a result for (kept, averaged over those).
CREATE VIEW ensemble_gaps AS
SELECT p.hash, count(*) AS members,
       (SELECT count(*) FROM ensemble_members WHERE ensemble_id = (SELECT model_id FROM active_model)) AS models,
       group_concat(m.name, '+') AS with_results_from
FROM predictions p
JOIN models m ON m.id = p.model_id
WHERE p.model_id IN (SELECT model_id FROM ensemble_members WHERE ensemble_id = (SELECT model_id FROM active_model))
GROUP BY p.hash
HAVING count(*) < (SELECT count(*) FROM ensemble_members WHERE ensemble_id = (SELECT model_id FROM active_model));

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('active_model', 'the models.id the views classify with (an ensemble is a model of its own)'),
    ('embedding_model', 'the model whose stored embeddings stand for the active one (an ensemble''s first member)'),
    ('ensemble_probabilities', 'each ensemble''s mean calibrated probability per sound and class, and how many members had it'),
    ('ensemble_ranked', 'ensemble_probabilities ranked per sound (rank 1 = the ensemble''s label)'),
    ('ensemble_gaps', 'sounds that only some of the active ensemble''s models have a result for');

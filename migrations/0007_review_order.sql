-- 0007: the review order. A correction teaches the most where the model is unsure (a small top-two
-- margin) and where many other sounds lie close by in embedding space (adapting on it moves them too).
-- review_density holds, per (model, sound), how many sounds of a fixed sample lie within the sample's
-- 1% nearest distance of it, and weight = ln(2 + that count), written by drumcat/commands/review.py after
-- `drumcat infer`; a sound without a row weighs ln(2).

CREATE TABLE review_density (
    model_id   INTEGER NOT NULL REFERENCES models(id),
    hash       TEXT NOT NULL,
    neighbours INTEGER NOT NULL,   -- sample sounds within the close radius (scaled to the whole catalog)
    weight     REAL NOT NULL,      -- ln(2 + neighbours)
    PRIMARY KEY (model_id, hash)
) WITHOUT ROWID;

DROP VIEW uncertain;

-- Every sound not yet corrected, the one whose correction teaches the most first:
-- priority = (1 - margin) * weight.
CREATE VIEW review_queue AS
SELECT u.path AS src, 'review/' || r.label || '/' || u.name AS dest,
       r.label, r.confidence, r.second_label, r.second_confidence, r.margin, r.below_threshold, r.hash,
       coalesce(d.neighbours, 0) AS neighbours,
       (1.0 - r.margin) * coalesce(d.weight, 0.6931471805599453) AS priority
FROM routed r
JOIN unique_files u ON u.hash = r.hash
LEFT JOIN review_density d ON d.hash = r.hash AND d.model_id = (SELECT model_id FROM embedding_model)
WHERE NOT r.overridden
ORDER BY priority DESC, u.path;

-- Samples worth a human look (below the threshold or a small top-two margin), in review order.
CREATE VIEW uncertain AS
SELECT src, dest, label, confidence, second_label, second_confidence, margin, hash, neighbours, priority
FROM review_queue
WHERE below_threshold OR margin < (SELECT uncertain_margin FROM rules)
ORDER BY priority DESC, src;

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('review_queue', 'src/dest: every uncorrected sound, the most teaching first: (1 - margin) x ln(2 + close neighbours)'),
    ('uncertain', 'src/dest: review_queue''s sounds below the threshold or with a small top-two margin, in that order');

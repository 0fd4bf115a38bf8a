-- 0010: the review order ranks by the core margin. The views file a sound under a core class, so the
-- doubt that matters is about that class, not about the top two fine labels: China at 0.5 against Crash
-- at 0.4 is a small top-two margin and no doubt about the Crash folder. core_margins holds, per
-- prediction, the probability of the core class the top fine label is filed under (summed over its fine
-- classes) minus the largest other core class's, with the catalog's stored canonical map
-- (drumcat.taxonomy.core_margins; written with every result, and again for every prediction when
-- `drumcat rules apply` stores another map). Measured on validation kits the model never saw, ranking by
-- (1 - core margin) alone leaves the rest better classified after N corrections than the top-two margin
-- weighted by close neighbours did, at N = 25, 50, 100 and 200 (README, "Adapting to your library");
-- the neighbour count stays in the view, and out of the priority.

CREATE TABLE core_margins (
    model_id INTEGER NOT NULL REFERENCES models(id),
    hash     TEXT NOT NULL,
    margin   REAL NOT NULL,   -- in [-1, 1]; below 0, another core class outweighs the one the sound is filed under
    PRIMARY KEY (model_id, hash)
) WITHOUT ROWID;

-- The predictions an older drumcat stored, computed here once (drumcat computes new ones in Python).
INSERT INTO core_margins (model_id, hash, margin)
WITH per_core AS (
    SELECT p.model_id, p.hash, coalesce(cm.canonical, 'misc') AS core, sum(v.value) AS probability
    FROM predictions p
    JOIN models m ON m.id = p.model_id
    JOIN json_each(p.probabilities) v
    LEFT JOIN canonical_map cm ON cm.fine = json_extract(m.labels, '$[' || v.key || ']')
    WHERE p.probabilities IS NOT NULL
    GROUP BY p.model_id, p.hash, core
)
SELECT p.model_id, p.hash,
       own.probability - coalesce((SELECT max(o.probability) FROM per_core o WHERE o.model_id = p.model_id
                                   AND o.hash = p.hash AND o.core <> own.core), 0)
FROM predictions p
JOIN per_core own ON own.model_id = p.model_id AND own.hash = p.hash
 AND own.core = coalesce((SELECT canonical FROM canonical_map WHERE fine = p.label), 'misc');

DROP VIEW uncertain;
DROP VIEW review_queue;

-- Every sound not yet corrected, the one the model is least sure of the folder of first:
-- priority = 1 - core margin (1 - the top-two margin where a prediction has no core margin).
CREATE VIEW review_queue AS
SELECT u.path AS src, 'review/' || r.label || '/' || u.name AS dest,
       r.label, r.confidence, r.second_label, r.second_confidence, r.margin, r.below_threshold, r.hash,
       coalesce(d.neighbours, 0) AS neighbours,
       cm.margin AS core_margin,
       1.0 - coalesce(cm.margin, r.margin) AS priority
FROM routed r
JOIN unique_files u ON u.hash = r.hash
LEFT JOIN core_margins cm ON cm.hash = r.hash AND cm.model_id = (SELECT model_id FROM active_model)
LEFT JOIN review_density d ON d.hash = r.hash AND d.model_id = (SELECT model_id FROM embedding_model)
WHERE NOT r.overridden
ORDER BY priority DESC, u.path;

-- Samples worth a human look (below the threshold, or a small top-two or core margin), in review order.
CREATE VIEW uncertain AS
SELECT src, dest, label, confidence, second_label, second_confidence, margin, hash, neighbours, core_margin, priority
FROM review_queue
WHERE below_threshold OR margin < (SELECT uncertain_margin FROM rules)
   OR core_margin < (SELECT uncertain_margin FROM rules)
ORDER BY priority DESC, src;

INSERT OR REPLACE INTO view_notes (name, description) VALUES
    ('review_queue', 'src/dest: every uncorrected sound, the least sure folder first: 1 - core margin'),
    ('uncertain', 'src/dest: review_queue''s sounds below the threshold or with a small top-two or core margin, in that order');

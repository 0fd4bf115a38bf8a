-- The full probability vector is stored once per prediction, as a JSON array in the order of the
-- model's labels (models.labels), instead of one table row per class. One row per class repeated the
-- 64-character hash 34 times per sound: 3.5 times the bytes written, and the largest cost of
-- `drumcat infer` after the model itself. The view `probabilities` gives the same rows as the table
-- it replaces: (model_id, hash, class, probability).

ALTER TABLE predictions ADD COLUMN probabilities TEXT;  -- JSON array: one probability per label of models.labels, in that order

-- json_group_array keeps the order of the rows it is given: the subquery sorts them by label position.
UPDATE predictions SET probabilities = (
    SELECT json_group_array(probability) FROM (
        SELECT pr.probability AS probability
        FROM probabilities pr
        JOIN models m ON m.id = pr.model_id
        JOIN json_each(m.labels) label ON label.value = pr.class
        WHERE pr.model_id = predictions.model_id AND pr.hash = predictions.hash
        ORDER BY label.key
    )
);

DROP TABLE probabilities;

CREATE VIEW probabilities AS
SELECT p.model_id,
       p.hash,
       json_extract(m.labels, '$[' || v.key || ']') AS class,
       v.value AS probability
FROM predictions p
JOIN models m ON m.id = p.model_id
JOIN json_each(p.probabilities) v;

INSERT INTO view_notes (name, description) VALUES
    ('probabilities', 'every prediction''s calibrated probability per class (unpacks predictions.probabilities)');

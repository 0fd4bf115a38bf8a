-- 0002: models, inference runs, and what each model predicted for each unique sound (content hash).

-- A model bundle as it was used: the card is stored whole, so results stay explained even if the
-- .keras file moves or changes (a changed model is a new card_hash, hence a new row).
CREATE TABLE models (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    card_hash TEXT NOT NULL UNIQUE,        -- sha256 prefix of the card: weights, labels and recipe
    path      TEXT NOT NULL,               -- the .keras file when first used
    labels    TEXT NOT NULL,               -- JSON list, the model's output order
    card      TEXT NOT NULL,               -- the whole card JSON (feature recipe, metrics, training)
    added_at  TEXT NOT NULL
);

-- One row per `drumcat infer`.
CREATE TABLE inference_runs (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL DEFAULT 'running', -- running | finished | interrupted | failed
    config      TEXT NOT NULL,             -- JSON: batch size, workers, trust flag
    planned     INTEGER NOT NULL DEFAULT 0,-- sounds that had no result when the run started
    predicted   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0
);

-- Top-1 result per (model, sound). A duplicate file shares its hash, so it is inferred once.
CREATE TABLE predictions (
    model_id          INTEGER NOT NULL REFERENCES models(id),
    hash              TEXT NOT NULL,
    run_id            INTEGER NOT NULL REFERENCES inference_runs(id),
    label             TEXT NOT NULL,       -- the most probable fine class
    confidence        REAL NOT NULL,       -- its calibrated probability
    second_label      TEXT,
    second_confidence REAL,
    embedding         BLOB,                -- penultimate-layer output, little-endian float16
    predicted_at      TEXT NOT NULL,
    PRIMARY KEY (model_id, hash)
);
CREATE INDEX predictions_hash ON predictions(hash);

-- The full calibrated probability vector, one row per class.
CREATE TABLE probabilities (
    model_id    INTEGER NOT NULL REFERENCES models(id),
    hash        TEXT NOT NULL,
    class       TEXT NOT NULL,
    probability REAL NOT NULL,
    PRIMARY KEY (model_id, hash, class)
) WITHOUT ROWID;

-- Sounds a model could not process (decode failure): recorded so a rerun skips them, not fatal.
CREATE TABLE inference_errors (
    model_id  INTEGER NOT NULL REFERENCES models(id),
    hash      TEXT NOT NULL,
    path      TEXT NOT NULL,               -- the file that was tried
    error     TEXT NOT NULL,
    run_id    INTEGER NOT NULL REFERENCES inference_runs(id),
    failed_at TEXT NOT NULL,
    PRIMARY KEY (model_id, hash)
);

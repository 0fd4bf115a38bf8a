-- 0008: every change to an override is kept, whoever makes it (`drumcat override`, `overrides import`,
-- the review page, a sqlite3 user): the review page shows a sound's history, and undo restores it.

CREATE TABLE override_history (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    label      TEXT,              -- the label set; NULL when the override was removed
    note       TEXT,
    previous   TEXT,              -- the label before; NULL when there was none
    changed_at TEXT NOT NULL
);
CREATE INDEX override_history_hash ON override_history(hash);

CREATE TRIGGER override_added AFTER INSERT ON overrides BEGIN
    INSERT INTO override_history (hash, label, note, previous, changed_at)
    VALUES (new.hash, new.label, new.note, NULL, new.created_at);
END;

CREATE TRIGGER override_changed AFTER UPDATE ON overrides BEGIN
    INSERT INTO override_history (hash, label, note, previous, changed_at)
    VALUES (new.hash, new.label, new.note, old.label, new.created_at);
END;

CREATE TRIGGER override_removed AFTER DELETE ON overrides BEGIN
    INSERT INTO override_history (hash, label, note, previous, changed_at)
    VALUES (old.hash, NULL, NULL, old.label, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
END;

-- What the existing overrides were is all an old catalog knows of their history.
INSERT INTO override_history (hash, label, note, previous, changed_at)
SELECT hash, label, note, NULL, created_at FROM overrides;

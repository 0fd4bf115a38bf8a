-- 0001: the catalog of scanned files and the audio behind them.
-- Times are ISO-8601 UTC text; paths are absolute POSIX text.

-- A folder given to `drumcat scan`.
CREATE TABLE roots (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,     -- absolute path of the scanned folder
    added_at     TEXT NOT NULL,            -- first scan of this root
    last_scan_at TEXT                      -- end of the latest completed scan
);

-- One row per `drumcat scan` run.
CREATE TABLE scans (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,                      -- NULL while running or if it was interrupted
    roots       TEXT NOT NULL,             -- JSON list of the roots scanned
    new         INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    moved       INTEGER NOT NULL DEFAULT 0,-- new paths whose content was already known
    missing     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0
);

-- Every audio file ever seen under a root. A file that disappears is marked missing, never deleted,
-- so what was learned about its content (keyed by hash) survives moves and renames.
CREATE TABLE files (
    id             INTEGER PRIMARY KEY,
    root_id        INTEGER NOT NULL REFERENCES roots(id),
    path           TEXT NOT NULL UNIQUE,   -- absolute path
    rel_path       TEXT NOT NULL,          -- path relative to the root
    ext            TEXT NOT NULL,          -- lower-case extension without the dot
    size           INTEGER NOT NULL,       -- bytes
    mtime          TEXT NOT NULL,          -- modification time, ISO-8601 UTC
    mtime_ns       INTEGER NOT NULL,       -- modification time in ns, compared exactly on rescan
    hash           TEXT,                   -- content hash (NULL if the file could not be read)
    hash_algorithm TEXT,                   -- e.g. sha256
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    missing        INTEGER NOT NULL DEFAULT 0 CHECK (missing IN (0, 1)),
    error_kind     TEXT,                   -- empty | unreadable | not_audio | truncated | decode_error
    error          TEXT                    -- the reader's message, NULL when the file is fine
);
CREATE INDEX files_hash ON files(hash);
CREATE INDEX files_root ON files(root_id);

-- What the audio of one unique content is, read once per hash.
CREATE TABLE audio (
    hash         TEXT PRIMARY KEY,
    format       TEXT NOT NULL,            -- container: WAV, AIFF, FLAC, OGG, MP3
    subtype      TEXT,                     -- sample encoding: PCM_16, FLOAT, VORBIS, MPEG_LAYER_III
    sample_rate  INTEGER NOT NULL,         -- Hz
    channels     INTEGER NOT NULL,
    frames       INTEGER NOT NULL,
    duration     REAL NOT NULL,            -- seconds
    peak_db      REAL,                     -- peak level in dBFS (NULL if audio_stats is off)
    rms_db       REAL,                     -- RMS level in dBFS (NULL if audio_stats is off)
    read_at      TEXT NOT NULL
);

-- Files that are present, readable audio: the starting point of most queries.
CREATE VIEW catalog AS
SELECT f.id AS file_id, f.path, f.rel_path, r.path AS root, f.ext, f.size, f.mtime, f.hash,
       a.format, a.subtype, a.sample_rate, a.channels, a.frames, a.duration, a.peak_db, a.rms_db
FROM files f
JOIN roots r ON r.id = f.root_id
JOIN audio a ON a.hash = f.hash
WHERE f.missing = 0 AND f.error IS NULL;

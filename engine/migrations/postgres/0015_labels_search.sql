-- Labels given when a run is triggered, as a JSON object: what the run list shows.
ALTER TABLE runs ADD COLUMN labels TEXT;
-- One row per label, for the filter `label=k:v` (by key and value, then run).
CREATE TABLE run_labels (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_labels_by_value ON run_labels (key, value, run_id);

-- What search reads of a finished run: its inputs, outputs and errors, as text, indexed by
-- trigrams so `ILIKE '%word%'` finds a word inside longer text (`ord-17` in `ord-1742`).
-- pg_trgm ships with PostgreSQL and is a trusted extension: the database's owner may add it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE run_search (
    run_id TEXT PRIMARY KEY,
    body   TEXT NOT NULL
);
CREATE INDEX run_search_trigrams ON run_search USING gin (body gin_trgm_ops);

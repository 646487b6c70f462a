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

-- What search reads of a finished run: its inputs, outputs and errors, as text, written with
-- the run's end. The integer key is the full-text index's rowid: explicit, since a VACUUM
-- renumbers implicit rowids, and never reused, since the index is built up to a mark.
CREATE TABLE run_search (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    body   TEXT NOT NULL
);
-- Trigrams: a word is found inside longer text (`ord-17` in `ord-1742`), in any case. Built
-- by the engine a batch at a time from `run_search` (a segment per run's commit cost the
-- 200-client run rate a third), up to `run_search_indexed.upto`; search reads the rows past
-- the mark directly.
CREATE VIRTUAL TABLE run_search_text USING fts5 (
    body, content = 'run_search', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TABLE run_search_indexed (upto INTEGER NOT NULL);
INSERT INTO run_search_indexed (upto) VALUES (0);
-- A row leaves the index with it, if it was in it.
CREATE TRIGGER run_search_removed AFTER DELETE ON run_search
WHEN old.id <= (SELECT upto FROM run_search_indexed) BEGIN
    INSERT INTO run_search_text (run_search_text, rowid, body) VALUES ('delete', old.id, old.body);
END;

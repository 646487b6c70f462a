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

-- What search reads of a finished run: its inputs, outputs and errors, as text. The explicit
-- integer key is the full-text index's rowid (a VACUUM renumbers implicit rowids).
CREATE TABLE run_search (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    body   TEXT NOT NULL
);
-- Trigrams: a word is found inside longer text (`ord-17` in `ord-1742`), in any case.
CREATE VIRTUAL TABLE run_search_text USING fts5 (
    body, content = 'run_search', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER run_search_added AFTER INSERT ON run_search BEGIN
    INSERT INTO run_search_text (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER run_search_removed AFTER DELETE ON run_search BEGIN
    INSERT INTO run_search_text (run_search_text, rowid, body) VALUES ('delete', old.id, old.body);
END;

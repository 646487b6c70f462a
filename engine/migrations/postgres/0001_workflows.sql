-- Workflows and their immutable versions. Times are unix milliseconds (BIGINT), so the
-- same queries serve SQLite and PostgreSQL without per-backend date handling.
CREATE TABLE workflows (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',  -- JSON array, copied from the latest version for listing
    latest_version BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    archived_at    BIGINT                       -- set: hidden from the list, runs kept
);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    version     BIGINT NOT NULL,
    source      TEXT NOT NULL,                  -- the document exactly as saved: export returns these bytes
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

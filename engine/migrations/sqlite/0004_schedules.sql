-- Cron schedules, shared by every process on the database. `next_fire_at` survives restarts;
-- `spec` (schedule and zone) tells an edited schedule from the one stored.
CREATE TABLE schedules (
    workflow_id   TEXT NOT NULL,
    trigger_index BIGINT NOT NULL,
    spec          TEXT NOT NULL,
    next_fire_at  BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, trigger_index)
);

-- One row per fired occurrence, inserted in the transaction that creates its run: a second
-- process firing the same occurrence hits the key and creates nothing, so each fires once.
CREATE TABLE schedule_fires (
    workflow_id   TEXT NOT NULL,
    trigger_index BIGINT NOT NULL,
    fire_at       BIGINT NOT NULL,
    run_id        TEXT NOT NULL,
    PRIMARY KEY (workflow_id, trigger_index, fire_at)
);

-- Webhook signatures already accepted: the same signature again is a replay.
CREATE TABLE webhook_deliveries (
    signature   TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

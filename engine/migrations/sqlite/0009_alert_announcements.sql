-- What alert intake last announced for each alert (its Alertmanager group and fingerprint):
-- firing, resolved and firing again are each announced once, across restarts and replicas.
CREATE TABLE alert_announcements (
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (group_key, fingerprint)
);

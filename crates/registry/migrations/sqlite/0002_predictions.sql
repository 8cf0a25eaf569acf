-- Served predictions and their realised outcomes (quantpipe serve).
-- Ids are 32 hex digits made by the server, so a prediction can be answered before its row is written.
-- features: the row the model saw, in its feature order, as little-endian f64 (NULL when a fallback answered);
-- inputs: JSON context (caller key, symbol and bar, the shadowed answer, a fallback's raw request).

CREATE TABLE predictions (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    endpoint    TEXT    NOT NULL,
    version_id  INTEGER REFERENCES model_versions (id),
    version     TEXT    NOT NULL,
    route       TEXT    NOT NULL CHECK (route IN ('champion', 'canary', 'shadow', 'fallback')),
    source      TEXT    NOT NULL CHECK (source IN ('model', 'fallback')),
    features    BLOB,
    inputs      TEXT    NOT NULL,
    output      TEXT    NOT NULL,
    latency_us  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX predictions_by_endpoint ON predictions (tenant, owner, endpoint, created_at);

CREATE TABLE feedback (
    prediction_id  TEXT    PRIMARY KEY REFERENCES predictions (id),
    tenant         TEXT    NOT NULL DEFAULT '',
    owner          TEXT    NOT NULL DEFAULT '',
    outcome        REAL    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    recorded_by    TEXT    NOT NULL
);

-- quantpipe registry, SQLite. Times are UTC milliseconds; JSON is stored as TEXT.
-- Every table carries its owner scope as (tenant, owner); '' means "none", so unique indexes see one value.

CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    UNIQUE (tenant, owner, name)
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT    NOT NULL DEFAULT '',
    owner           TEXT    NOT NULL DEFAULT '',
    experiment_id   INTEGER NOT NULL REFERENCES experiments (id),
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    config          TEXT    NOT NULL,
    params          TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    code_version    TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    compute_seconds REAL,
    error           TEXT,
    created_by      TEXT    NOT NULL
);
CREATE INDEX runs_by_scope ON runs (tenant, owner, id);
CREATE INDEX runs_by_experiment ON runs (tenant, owner, experiment_id, id);
CREATE INDEX runs_by_status ON runs (tenant, owner, status, id);

CREATE TABLE registered_models (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant, owner, name)
);

CREATE TABLE model_versions (
    id                INTEGER PRIMARY KEY,
    model_id          INTEGER NOT NULL REFERENCES registered_models (id),
    tenant            TEXT    NOT NULL DEFAULT '',
    owner             TEXT    NOT NULL DEFAULT '',
    major             INTEGER NOT NULL,
    minor             INTEGER NOT NULL,
    patch             INTEGER NOT NULL,
    stage             TEXT    NOT NULL
        CHECK (stage IN ('draft', 'staging', 'production', 'archived', 'deprecated')),
    family            TEXT    NOT NULL,
    task              TEXT    NOT NULL,
    metrics           TEXT    NOT NULL,
    params            TEXT    NOT NULL,
    feature_set       TEXT    NOT NULL,
    feature_set_hash  TEXT    NOT NULL,
    feature_names     TEXT    NOT NULL,
    label             TEXT    NOT NULL,
    label_lookahead   TEXT    NOT NULL,
    dataset_hash      TEXT    NOT NULL,
    code_version      TEXT    NOT NULL,
    parent_id         INTEGER REFERENCES model_versions (id),
    run_id            INTEGER REFERENCES runs (id),
    artifact_uri      TEXT    NOT NULL,
    description       TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    created_by        TEXT    NOT NULL,
    stage_changed_at  INTEGER NOT NULL,
    UNIQUE (model_id, major, minor, patch)
);
-- The database itself refuses a second production version of one model (a model belongs to one scope).
CREATE UNIQUE INDEX one_production_version ON model_versions (model_id) WHERE stage = 'production';
CREATE INDEX versions_by_scope ON model_versions (tenant, owner, id);
CREATE INDEX versions_by_stage ON model_versions (tenant, owner, stage, id);
CREATE INDEX versions_by_model ON model_versions (model_id, id);

CREATE TABLE evaluations (
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    version_id  INTEGER NOT NULL REFERENCES model_versions (id),
    split       TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    value       REAL    NOT NULL,
    PRIMARY KEY (version_id, split, metric)
);

CREATE TABLE deployments (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL DEFAULT '',
    owner          TEXT    NOT NULL DEFAULT '',
    endpoint       TEXT    NOT NULL,
    version_id     INTEGER NOT NULL REFERENCES model_versions (id),
    traffic_share  REAL    NOT NULL CHECK (traffic_share >= 0 AND traffic_share <= 1),
    route          TEXT    NOT NULL CHECK (route IN ('champion', 'canary', 'shadow')),
    deployed_at    INTEGER NOT NULL,
    deployed_by    TEXT    NOT NULL,
    retired_at     INTEGER
);
CREATE INDEX deployments_by_endpoint ON deployments (tenant, owner, endpoint, id);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     TEXT    NOT NULL,
    version_id  INTEGER REFERENCES model_versions (id),
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX alerts_by_scope ON alerts (tenant, owner, id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    model_id    INTEGER REFERENCES registered_models (id),
    version_id  INTEGER REFERENCES model_versions (id),
    from_stage  TEXT,
    to_stage    TEXT,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_by_model ON audit_log (tenant, owner, model_id, id);

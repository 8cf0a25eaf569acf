//! Registering model versions (semantic versions bumped from what changed), reading and listing them.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::{begin_write, col, json_col, scope_col, semver_cols, Arg, Filter};
use crate::{check_name, now_ms, Registry, RegistryError, Result, Scope, Selector, SemVer, Stage, VersionRef};

/// One score of a version on one split (e.g. `test` / `auc`, `cv_fold_3` / `logloss`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub split: String,
    pub metric: String,
    pub value: f64,
}

/// What a caller knows about a newly trained model. The registry adds the version, the parent, the
/// scope and the timestamps.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    pub name: String,
    /// Model family, e.g. `lightgbm`.
    pub family: String,
    /// `binary`, `multiclass:3`, `regression`, …
    pub task: String,
    /// Hyperparameters and preprocessing, as the model was configured.
    pub params: serde_json::Value,
    /// The feature set's name, and a hash of its definition (indicators and their parameters).
    pub feature_set: String,
    pub feature_set_hash: String,
    /// The model's input columns, in order.
    pub feature_names: Vec<String>,
    /// The label's definition and its look-ahead (e.g. `1h` or `60 bars`).
    pub label: serde_json::Value,
    pub label_lookahead: String,
    /// Content hash of the bars the model was trained on.
    pub dataset_hash: String,
    pub code_version: String,
    pub run_id: Option<i64>,
    /// Headline metrics (e.g. `oos_auc`), used by gates and ranking.
    pub metrics: BTreeMap<String, f64>,
    pub evaluations: Vec<Evaluation>,
    pub description: String,
    /// `draft` (default) or `staging`; production is reached only through promotion and its gate.
    pub stage: Option<Stage>,
}

/// A registered model version as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub id: i64,
    pub name: String,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub version: SemVer,
    pub stage: Stage,
    pub family: String,
    pub task: String,
    pub metrics: BTreeMap<String, f64>,
    pub params: serde_json::Value,
    pub feature_set: String,
    pub feature_set_hash: String,
    pub feature_names: Vec<String>,
    pub label: serde_json::Value,
    pub label_lookahead: String,
    pub dataset_hash: String,
    pub code_version: String,
    pub parent: Option<SemVer>,
    pub run_id: Option<i64>,
    pub artifact_uri: String,
    pub description: String,
    pub created_at: i64,
    pub created_by: String,
    pub stage_changed_at: i64,
    /// Filled by [`Registry::version`]; empty in listings.
    pub evaluations: Vec<Evaluation>,
}

impl ModelVersion {
    /// `name@1.2.0`
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

pub(crate) fn scope_text<S: serde::Serializer>(scope: &Scope, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(scope)
}

/// Filters for listing versions; newest first, `limit` rows from before `before_id` (keyset paging).
#[derive(Debug, Clone, Default)]
pub struct VersionFilter {
    pub name: Option<String>,
    /// Substring of the model name.
    pub name_contains: Option<String>,
    pub stage: Option<Stage>,
    pub family: Option<String>,
    pub limit: Option<i64>,
    pub before_id: Option<i64>,
}

pub(crate) const VERSION_SELECT: &str = "SELECT v.id, m.name, v.tenant, v.owner, v.major, v.minor, v.patch, \
    v.stage, v.family, v.task, v.metrics, v.params, v.feature_set, v.feature_set_hash, v.feature_names, v.label, \
    v.label_lookahead, v.dataset_hash, v.code_version, v.run_id, v.artifact_uri, v.description, v.created_at, \
    v.created_by, v.stage_changed_at, p.major AS parent_major, p.minor AS parent_minor, p.patch AS parent_patch \
    FROM model_versions v JOIN registered_models m ON m.id = v.model_id \
    LEFT JOIN model_versions p ON p.id = v.parent_id";

pub(crate) fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    const T: &str = "model_versions";
    let stage: String = col(row, T, "stage")?;
    Ok(ModelVersion {
        id: col(row, T, "id")?,
        name: col(row, T, "name")?,
        scope: scope_col(row, T)?,
        version: semver_cols(row, T, "")?
            .ok_or_else(|| RegistryError::Corrupt { what: format!("{T}.major"), message: "NULL".into() })?,
        stage: stage
            .parse()
            .map_err(|_| RegistryError::Corrupt { what: format!("{T}.stage"), message: format!("stage {stage:?}") })?,
        family: col(row, T, "family")?,
        task: col(row, T, "task")?,
        metrics: json_col(row, T, "metrics")?,
        params: json_col(row, T, "params")?,
        feature_set: col(row, T, "feature_set")?,
        feature_set_hash: col(row, T, "feature_set_hash")?,
        feature_names: json_col(row, T, "feature_names")?,
        label: json_col(row, T, "label")?,
        label_lookahead: col(row, T, "label_lookahead")?,
        dataset_hash: col(row, T, "dataset_hash")?,
        code_version: col(row, T, "code_version")?,
        parent: semver_cols(row, T, "parent_")?,
        run_id: col(row, T, "run_id")?,
        artifact_uri: col(row, T, "artifact_uri")?,
        description: col(row, T, "description")?,
        created_at: col(row, T, "created_at")?,
        created_by: col(row, T, "created_by")?,
        stage_changed_at: col(row, T, "stage_changed_at")?,
        evaluations: Vec::new(),
    })
}

/// Which part of the version moves, and why, given the newest existing version.
pub(crate) fn next_version(previous: Option<&ModelVersion>, new: &NewVersion) -> (SemVer, String) {
    let Some(prev) = previous else {
        return (SemVer::FIRST, "first version".into());
    };
    let v = prev.version;
    let mut major = Vec::new();
    if prev.family != new.family {
        major.push(format!("family {} → {}", prev.family, new.family));
    }
    if prev.task != new.task {
        major.push(format!("task {} → {}", prev.task, new.task));
    }
    if prev.feature_set != new.feature_set {
        major.push(format!("feature set {} → {}", prev.feature_set, new.feature_set));
    }
    if !major.is_empty() {
        return (SemVer { major: v.major + 1, minor: 0, patch: 0 }, major.join(", "));
    }
    let mut minor = Vec::new();
    if prev.params != new.params {
        minor.push("hyperparameters changed".to_string());
    }
    if prev.feature_set_hash != new.feature_set_hash || prev.feature_names != new.feature_names {
        minor.push("features changed".to_string());
    }
    if prev.label != new.label {
        minor.push("label changed".to_string());
    }
    if !minor.is_empty() {
        return (SemVer { major: v.major, minor: v.minor + 1, patch: 0 }, minor.join(", "));
    }
    let reason = if prev.dataset_hash != new.dataset_hash {
        "retrained, same configuration, new data"
    } else {
        "retrained, same configuration, same data"
    };
    (SemVer { major: v.major, minor: v.minor, patch: v.patch + 1 }, reason.into())
}

impl Registry {
    /// Registers a version of `new.name` from the model files in `files` (name → bytes, e.g. the
    /// output of `quantpipe train`). Adds `config.json`, `metadata.json` and `README.md`, writes the
    /// directory to the artifact store and commits the row, in that order, under the model's lock.
    pub async fn register(
        &self,
        scope: &Scope,
        new: &NewVersion,
        files: Vec<(String, Vec<u8>)>,
        actor: &str,
    ) -> Result<ModelVersion> {
        check_name(&new.name)?;
        let stage = new.stage.unwrap_or(Stage::Draft);
        if !matches!(stage, Stage::Draft | Stage::Staging) {
            return Err(RegistryError::InvalidArgument(format!(
                "a new version starts as draft or staging, not {stage}; promote it afterwards (the gate applies)"
            )));
        }
        for (metric, value) in &new.metrics {
            if !value.is_finite() {
                return Err(RegistryError::InvalidArgument(format!(
                    "metric {metric} is {value}; metrics must be finite"
                )));
            }
        }
        if let Some(e) = new.evaluations.iter().find(|e| !e.value.is_finite()) {
            return Err(RegistryError::InvalidArgument(format!(
                "evaluation {}/{} is {}; values must be finite",
                e.split, e.metric, e.value
            )));
        }
        for (name, _) in &files {
            if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
                return Err(RegistryError::InvalidArgument(format!("artifact file name {name:?} is not a plain name")));
            }
        }
        let (tenant, owner) = scope.key();
        let now = now_ms();
        let mut tx = begin_write(&self.pool, self.backend).await?;
        sqlx::query(
            "INSERT INTO registered_models (tenant, owner, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (tenant, owner, name) DO NOTHING",
        )
        .bind(tenant)
        .bind(owner)
        .bind(&new.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Takes the model's row lock (PostgreSQL; SQLite holds its write lock already): concurrent
        // registrations and promotions of one model run one after another.
        let model_id: i64 = sqlx::query(
            "UPDATE registered_models SET updated_at = $4 WHERE tenant = $1 AND owner = $2 AND name = $3 RETURNING id",
        )
        .bind(tenant)
        .bind(owner)
        .bind(&new.name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let previous = latest_version(&mut tx, model_id).await?;
        let (version, reason) = next_version(previous.as_ref(), new);
        let id: i64 = sqlx::query(
            "INSERT INTO model_versions (model_id, tenant, owner, major, minor, patch, stage, family, task, metrics, \
             params, feature_set, feature_set_hash, feature_names, label, label_lookahead, dataset_hash, code_version, \
             parent_id, run_id, artifact_uri, description, created_at, created_by, stage_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, '', \
             $21, $22, $23, $22) RETURNING id",
        )
        .bind(model_id)
        .bind(tenant)
        .bind(owner)
        .bind(version.major)
        .bind(version.minor)
        .bind(version.patch)
        .bind(stage.as_str())
        .bind(&new.family)
        .bind(&new.task)
        .bind(to_json(&new.metrics))
        .bind(to_json(&new.params))
        .bind(&new.feature_set)
        .bind(&new.feature_set_hash)
        .bind(to_json(&new.feature_names))
        .bind(to_json(&new.label))
        .bind(&new.label_lookahead)
        .bind(&new.dataset_hash)
        .bind(&new.code_version)
        .bind(previous.as_ref().map(|p| p.id))
        .bind(new.run_id)
        .bind(&new.description)
        .bind(now)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for e in &new.evaluations {
            sqlx::query(
                "INSERT INTO evaluations (tenant, owner, version_id, split, metric, value) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant)
            .bind(owner)
            .bind(id)
                .bind(&e.split)
                .bind(&e.metric)
                .bind(e.value)
                .execute(&mut *tx)
                .await
                .map_err(|err| match err {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        RegistryError::InvalidArgument(format!("evaluation {}/{} is given twice", e.split, e.metric))
                    }
                    other => other.into(),
                })?;
        }
        let mut registered = ModelVersion {
            id,
            name: new.name.clone(),
            scope: scope.clone(),
            version,
            stage,
            family: new.family.clone(),
            task: new.task.clone(),
            metrics: new.metrics.clone(),
            params: new.params.clone(),
            feature_set: new.feature_set.clone(),
            feature_set_hash: new.feature_set_hash.clone(),
            feature_names: new.feature_names.clone(),
            label: new.label.clone(),
            label_lookahead: new.label_lookahead.clone(),
            dataset_hash: new.dataset_hash.clone(),
            code_version: new.code_version.clone(),
            parent: previous.as_ref().map(|p| p.version),
            run_id: new.run_id,
            artifact_uri: String::new(),
            description: new.description.clone(),
            created_at: now,
            created_by: actor.to_string(),
            stage_changed_at: now,
            evaluations: new.evaluations.clone(),
        };
        let mut files: Vec<(String, Vec<u8>)> = files
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "config.json" | "metadata.json" | "README.md"))
            .collect();
        files.extend(describe(&registered, &reason));
        let key = format!("{}/{}/{}", scope.path(), new.name, version);
        let uri = self.artifacts.put_dir(&key, files).await?;
        registered.artifact_uri = uri.clone();
        let finish = async {
            sqlx::query("UPDATE model_versions SET artifact_uri = $1 WHERE id = $2")
                .bind(&uri)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            crate::lifecycle::audit(
                &mut tx,
                scope,
                actor,
                "register",
                model_id,
                Some(id),
                None,
                Some(stage),
                &format!("{}@{version}: {reason}", new.name),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, RegistryError>(())
        };
        if let Err(e) = finish.await {
            self.artifacts.remove(&uri).await;
            return Err(e);
        }
        Ok(registered)
    }

    /// One version, with its evaluations.
    pub async fn version(&self, scope: &Scope, reference: &VersionRef) -> Result<ModelVersion> {
        let mut conn = self.pool.acquire().await?;
        let mut version = resolve(&mut conn, scope, reference).await?;
        let (tenant, owner) = scope.key();
        let rows = sqlx::query(
            "SELECT split, metric, value FROM evaluations WHERE tenant = $1 AND owner = $2 AND version_id = $3 \
             ORDER BY split, metric",
        )
        .bind(tenant)
        .bind(owner)
        .bind(version.id)
        .fetch_all(&mut *conn)
        .await?;
        version.evaluations = rows
            .iter()
            .map(|r| {
                Ok(Evaluation {
                    split: col(r, "evaluations", "split")?,
                    metric: col(r, "evaluations", "metric")?,
                    value: col(r, "evaluations", "value")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(version)
    }

    /// Versions in `scope`, newest first.
    pub async fn versions(&self, scope: &Scope, filter: &VersionFilter) -> Result<Vec<ModelVersion>> {
        let mut f = Filter::scoped("v", scope);
        if let Some(name) = &filter.name {
            f.push("m.name = ?", Arg::Text(name.clone()));
        }
        if let Some(part) = &filter.name_contains {
            let escaped = part.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            // Matching names first (a small table), then their versions through the model index.
            f.push(
                "v.model_id IN (SELECT s.id FROM registered_models s WHERE s.tenant = $1 AND s.owner = $2 \
                 AND s.name LIKE ? ESCAPE '\\')",
                Arg::Text(format!("%{escaped}%")),
            );
        }
        if let Some(stage) = filter.stage {
            f.push("v.stage = ?", Arg::Text(stage.as_str().into()));
        }
        if let Some(family) = &filter.family {
            f.push("v.family = ?", Arg::Text(family.clone()));
        }
        if let Some(before) = filter.before_id {
            f.push("v.id < ?", Arg::Int(before));
        }
        let limit = filter.limit.unwrap_or(50).clamp(1, 10_000);
        let sql = format!("{VERSION_SELECT} WHERE {} ORDER BY v.id DESC LIMIT {}", f.where_sql(), f.next_placeholder());
        let query = f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(limit);
        query.fetch_all(&self.pool).await?.iter().map(version_from_row).collect()
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

async fn latest_version(conn: &mut AnyConnection, model_id: i64) -> Result<Option<ModelVersion>> {
    let sql =
        format!("{VERSION_SELECT} WHERE v.model_id = $1 ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(model_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(version_from_row)
        .transpose()
}

/// Finds the version a reference names, in `scope`, or says what exists instead.
pub(crate) async fn resolve(conn: &mut AnyConnection, scope: &Scope, reference: &VersionRef) -> Result<ModelVersion> {
    let mut f = Filter::scoped("v", scope);
    f.push("m.name = ?", Arg::Text(reference.name.clone()));
    let order = match reference.selector {
        Selector::Exact(v) => {
            f.push("v.major = ?", Arg::Int(v.major));
            f.push("v.minor = ?", Arg::Int(v.minor));
            f.push("v.patch = ?", Arg::Int(v.patch));
            "v.id DESC"
        }
        Selector::Stage(stage) => {
            f.push("v.stage = ?", Arg::Text(stage.as_str().into()));
            "v.major DESC, v.minor DESC, v.patch DESC"
        }
        Selector::Latest => "v.major DESC, v.minor DESC, v.patch DESC",
    };
    let sql = format!("{VERSION_SELECT} WHERE {} ORDER BY {order} LIMIT 1", f.where_sql());
    match f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_optional(&mut *conn).await? {
        Some(row) => version_from_row(&row),
        None => {
            let (tenant, owner) = scope.key();
            let known: Vec<String> = sqlx::query(
                "SELECT v.major, v.minor, v.patch, v.stage FROM model_versions v \
                 JOIN registered_models m ON m.id = v.model_id \
                 WHERE m.tenant = $1 AND m.owner = $2 AND m.name = $3 ORDER BY v.major, v.minor, v.patch",
            )
            .bind(tenant)
            .bind(owner)
            .bind(&reference.name)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| -> Result<String> {
                let stage: String = col(r, "model_versions", "stage")?;
                let v = semver_cols(r, "model_versions", "")?.map_or("?".to_string(), |v| v.to_string());
                Ok(format!("{v} ({stage})"))
            })
            .collect::<Result<_>>()?;
            Err(RegistryError::NotFound(if known.is_empty() {
                format!("no model named {:?} in scope {scope}", reference.name)
            } else {
                format!("{reference} not found in scope {scope}; its versions: {}", known.join(", "))
            }))
        }
    }
}

/// The self-describing files of a version directory: config.json, metadata.json and README.md.
fn describe(v: &ModelVersion, reason: &str) -> Vec<(String, Vec<u8>)> {
    let config = serde_json::json!({
        "family": v.family,
        "task": v.task,
        "params": v.params,
        "feature_set": v.feature_set,
        "feature_set_hash": v.feature_set_hash,
        "features": v.feature_names,
        "label": v.label,
        "label_lookahead": v.label_lookahead,
    });
    let metadata = serde_json::json!({
        "name": v.name,
        "version": v.version,
        "scope": v.scope.to_string(),
        "metrics": v.metrics,
        "evaluations": v.evaluations,
        "lineage": {
            "parent_version": v.parent,
            "version_reason": reason,
            "dataset_hash": v.dataset_hash,
            "feature_set_hash": v.feature_set_hash,
            "code_version": v.code_version,
            "run_id": v.run_id,
        },
        "created_at_ms": v.created_at,
        "created_by": v.created_by,
    });
    let mut metrics = String::new();
    for (k, value) in &v.metrics {
        metrics.push_str(&format!("| {k} | {value:.6} |\n"));
    }
    if metrics.is_empty() {
        metrics.push_str("| (none recorded) | |\n");
    }
    let example: Vec<String> = v.feature_names.iter().take(3).map(|n| format!("\"{n}\": 0.0")).collect();
    let readme = format!(
        "# {name} {version}\n\n{description}\
A `{family}` model ({task}) over {n} features of the feature set `{set}`, predicting the label\n\
`{label}` (look-ahead {lookahead}). Version reason: {reason}.\n\n\
## How it was validated\n\n| metric | value |\n|---|---|\n{metrics}\n\
Trained on data with content hash `{dataset}`, by {code}.\n\n\
## How to call it\n\n```\nquantpipe models show {name}@{version}\n\
curl -s localhost:8001/predict -d '{{\"model_name\": \"{name}\", \"features\": {{{example}, ...}}}}'\n```\n\n\
The input columns, in order, are listed in `config.json` (`features`).{lgbm}\n",
        name = v.name,
        version = v.version,
        description = if v.description.is_empty() { String::new() } else { format!("{}\n\n", v.description) },
        family = v.family,
        task = v.task,
        n = v.feature_names.len(),
        set = v.feature_set,
        label = serde_json::to_string(&v.label).unwrap_or_default(),
        lookahead = v.label_lookahead,
        dataset = v.dataset_hash,
        code = v.code_version,
        example = example.join(", "),
        lgbm = if v.family == "lightgbm" {
            "\nPython LightGBM reads the trees directly: `lightgbm.Booster(model_file=\"model.txt\")`."
        } else {
            ""
        },
    );
    vec![
        ("config.json".into(), serde_json::to_vec_pretty(&config).expect("json")),
        ("metadata.json".into(), serde_json::to_vec_pretty(&metadata).expect("json")),
        ("README.md".into(), readme.into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(new: &NewVersion, version: SemVer) -> ModelVersion {
        ModelVersion {
            id: 1,
            name: new.name.clone(),
            scope: Scope::Platform,
            version,
            stage: Stage::Draft,
            family: new.family.clone(),
            task: new.task.clone(),
            metrics: new.metrics.clone(),
            params: new.params.clone(),
            feature_set: new.feature_set.clone(),
            feature_set_hash: new.feature_set_hash.clone(),
            feature_names: new.feature_names.clone(),
            label: new.label.clone(),
            label_lookahead: new.label_lookahead.clone(),
            dataset_hash: new.dataset_hash.clone(),
            code_version: new.code_version.clone(),
            parent: None,
            run_id: None,
            artifact_uri: String::new(),
            description: String::new(),
            created_at: 0,
            created_by: String::new(),
            stage_changed_at: 0,
            evaluations: vec![],
        }
    }

    #[test]
    fn versions_bump_by_what_changed() {
        let base = NewVersion {
            name: "m".into(),
            family: "lightgbm".into(),
            task: "binary".into(),
            params: serde_json::json!({"num_leaves": 31}),
            feature_set: "standard".into(),
            feature_set_hash: "f1".into(),
            feature_names: vec!["rsi_14".into()],
            label: serde_json::json!({"kind": "horizon"}),
            dataset_hash: "d1".into(),
            ..Default::default()
        };
        let prev = stored(&base, SemVer { major: 1, minor: 2, patch: 3 });
        assert_eq!(next_version(None, &base).0, SemVer::FIRST);
        let v = |n: &NewVersion| next_version(Some(&prev), n).0.to_string();
        assert_eq!(v(&NewVersion { dataset_hash: "d2".into(), ..base.clone() }), "1.2.4");
        assert_eq!(v(&base), "1.2.4");
        assert_eq!(v(&NewVersion { params: serde_json::json!({"num_leaves": 63}), ..base.clone() }), "1.3.0");
        assert_eq!(v(&NewVersion { feature_set_hash: "f2".into(), ..base.clone() }), "1.3.0");
        assert_eq!(v(&NewVersion { feature_set: "minimal".into(), ..base.clone() }), "2.0.0");
        let (next, reason) = next_version(Some(&prev), &NewVersion { family: "linear".into(), ..base.clone() });
        assert_eq!(next.to_string(), "2.0.0");
        assert_eq!(reason, "family lightgbm → linear");
    }
}

//! Experiments and runs: every training job, with its configuration, status, timing, host and error.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{begin_write, col, json_col, scope_col, Arg, Filter};
use crate::versions::scope_text;
use crate::{check_name, now_ms, Registry, RegistryError, Result, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<RunStatus> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(RegistryError::InvalidArgument(format!(
                "unknown run status {other:?}: expected running, succeeded or failed"
            ))),
        }
    }
}

/// One training job.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub experiment: String,
    pub status: RunStatus,
    pub config: serde_json::Value,
    pub params: serde_json::Value,
    pub host: String,
    pub code_version: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub compute_seconds: Option<f64>,
    pub error: Option<String>,
    pub created_by: String,
}

/// Filters for listing runs; newest first, keyset paging by `before_id`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub experiment: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: Option<i64>,
    pub before_id: Option<i64>,
}

const RUN_SELECT: &str = "SELECT r.id, r.tenant, r.owner, e.name AS experiment, r.status, r.config, r.params, r.host, \
    r.code_version, r.started_at, r.ended_at, r.compute_seconds, r.error, r.created_by \
    FROM runs r JOIN experiments e ON e.id = r.experiment_id";

fn run_from_row(row: &AnyRow) -> Result<Run> {
    const T: &str = "runs";
    let status: String = col(row, T, "status")?;
    Ok(Run {
        id: col(row, T, "id")?,
        scope: scope_col(row, T)?,
        experiment: col(row, T, "experiment")?,
        status: status.parse().map_err(|_| RegistryError::Corrupt { what: format!("{T}.status"), message: status })?,
        config: json_col(row, T, "config")?,
        params: json_col(row, T, "params")?,
        host: col(row, T, "host")?,
        code_version: col(row, T, "code_version")?,
        started_at: col(row, T, "started_at")?,
        ended_at: col(row, T, "ended_at")?,
        compute_seconds: col(row, T, "compute_seconds")?,
        error: col(row, T, "error")?,
        created_by: col(row, T, "created_by")?,
    })
}

/// The machine's name, for run records.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Registry {
    /// Records the start of a run in `experiment` (created on first use).
    pub async fn start_run(
        &self,
        scope: &Scope,
        experiment: &str,
        config: &serde_json::Value,
        params: &serde_json::Value,
        code_version: &str,
        actor: &str,
    ) -> Result<Run> {
        check_name(experiment)?;
        let (tenant, owner) = scope.key();
        let now = now_ms();
        let mut tx = begin_write(&self.pool, self.backend).await?;
        sqlx::query(
            "INSERT INTO experiments (tenant, owner, name, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, owner, name) DO NOTHING",
        )
        .bind(tenant)
        .bind(owner)
        .bind(experiment)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let experiment_id: i64 =
            sqlx::query("SELECT id FROM experiments WHERE tenant = $1 AND owner = $2 AND name = $3")
                .bind(tenant)
                .bind(owner)
                .bind(experiment)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let id: i64 = sqlx::query(
            "INSERT INTO runs (tenant, owner, experiment_id, status, config, params, host, code_version, started_at, \
             created_by) VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(tenant)
        .bind(owner)
        .bind(experiment_id)
        .bind(config.to_string())
        .bind(params.to_string())
        .bind(host_name())
        .bind(code_version)
        .bind(now)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        self.run(scope, id).await
    }

    /// Records how a running run ended: `Ok(())` or the error that stopped it.
    pub async fn finish_run(
        &self,
        scope: &Scope,
        run_id: i64,
        outcome: std::result::Result<(), String>,
        compute_seconds: f64,
    ) -> Result<Run> {
        let (tenant, owner) = scope.key();
        let (status, error) = match outcome {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(e) => (RunStatus::Failed, Some(e)),
        };
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, error = $2, ended_at = $3, compute_seconds = $4 \
             WHERE id = $5 AND tenant = $6 AND owner = $7 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(compute_seconds)
        .bind(run_id)
        .bind(tenant)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if updated == 0 {
            let run = self.run(scope, run_id).await?;
            return Err(RegistryError::InvalidArgument(format!("run {run_id} has already ended ({:?})", run.status)));
        }
        self.run(scope, run_id).await
    }

    pub async fn run(&self, scope: &Scope, run_id: i64) -> Result<Run> {
        let mut f = Filter::scoped("r", scope);
        f.push("r.id = ?", Arg::Int(run_id));
        let sql = format!("{RUN_SELECT} WHERE {}", f.where_sql());
        match f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_optional(&self.pool).await? {
            Some(row) => run_from_row(&row),
            None => Err(RegistryError::NotFound(format!("no run {run_id} in scope {scope}"))),
        }
    }

    /// Runs in `scope`, newest first.
    pub async fn runs(&self, scope: &Scope, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut f = Filter::scoped("r", scope);
        if let Some(experiment) = &filter.experiment {
            f.push("e.name = ?", Arg::Text(experiment.clone()));
        }
        if let Some(status) = filter.status {
            f.push("r.status = ?", Arg::Text(status.as_str().into()));
        }
        if let Some(before) = filter.before_id {
            f.push("r.id < ?", Arg::Int(before));
        }
        let limit = filter.limit.unwrap_or(50).clamp(1, 10_000);
        let sql = format!("{RUN_SELECT} WHERE {} ORDER BY r.id DESC LIMIT {}", f.where_sql(), f.next_placeholder());
        let rows = f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }
}

//! Deployments (which version serves which endpoint, on which route, with what traffic share) and
//! alerts. The server and the monitor write these; the CLI reads them.

use serde::Serialize;
use sqlx::Row;

use crate::db::{begin_write, col, scope_col, semver_cols, Arg, Filter};
use crate::lifecycle::{audit, lock_model};
use crate::versions::{resolve, scope_text};
use crate::{check_name, now_ms, Registry, RegistryError, Result, Scope, VersionRef};

/// How an endpoint uses a deployed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Answers requests.
    Champion,
    /// Answers a share of requests (sticky per caller).
    Canary,
    /// Scores every request; its answers are logged, never returned.
    Shadow,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Champion => "champion",
            Route::Canary => "canary",
            Route::Shadow => "shadow",
        }
    }
}

impl std::str::FromStr for Route {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Route> {
        match s {
            "champion" => Ok(Route::Champion),
            "canary" => Ok(Route::Canary),
            "shadow" => Ok(Route::Shadow),
            other => Err(RegistryError::InvalidArgument(format!(
                "unknown route {other:?}: expected champion, canary or shadow"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub id: i64,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub endpoint: String,
    pub version: String,
    pub route: Route,
    pub traffic_share: f64,
    pub deployed_at: i64,
    pub deployed_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: i64,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub kind: String,
    pub severity: String,
    pub message: String,
    pub version_id: Option<i64>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
}

impl Registry {
    /// Serves `reference` on `endpoint` by `route`, replacing the endpoint's current deployment on that
    /// route. Recorded in the audit log.
    pub async fn deploy(
        &self,
        scope: &Scope,
        endpoint: &str,
        reference: &VersionRef,
        route: Route,
        traffic_share: f64,
        actor: &str,
    ) -> Result<Deployment> {
        check_name(endpoint)?;
        if !(0.0..=1.0).contains(&traffic_share) {
            return Err(RegistryError::InvalidArgument(format!("traffic share {traffic_share} is outside 0..=1")));
        }
        let (tenant, owner) = scope.key();
        let now = now_ms();
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let model_id = lock_model(&mut tx, scope, &reference.name).await?;
        let version = resolve(&mut tx, scope, reference).await?;
        sqlx::query(
            "UPDATE deployments SET retired_at = $1 WHERE tenant = $2 AND owner = $3 AND endpoint = $4 AND route = $5 \
             AND retired_at IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(owner)
        .bind(endpoint)
        .bind(route.as_str())
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query(
            "INSERT INTO deployments (tenant, owner, endpoint, version_id, traffic_share, route, deployed_at, \
             deployed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(tenant)
        .bind(owner)
        .bind(endpoint)
        .bind(version.id)
        .bind(traffic_share)
        .bind(route.as_str())
        .bind(now)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let detail = format!(
            "{} on {endpoint} as {} ({:.0}% of traffic)",
            version.reference(),
            route.as_str(),
            traffic_share * 100.0
        );
        audit(&mut tx, scope, actor, "deploy", model_id, Some(version.id), None, None, &detail).await?;
        tx.commit().await?;
        Ok(Deployment {
            id,
            scope: scope.clone(),
            endpoint: endpoint.to_string(),
            version: version.reference(),
            route,
            traffic_share,
            deployed_at: now,
            deployed_by: actor.to_string(),
        })
    }

    /// Current (not retired) deployments in `scope`, optionally of one endpoint.
    pub async fn deployments(&self, scope: &Scope, endpoint: Option<&str>) -> Result<Vec<Deployment>> {
        let mut f = Filter::scoped("d", scope);
        if let Some(endpoint) = endpoint {
            f.push("d.endpoint = ?", Arg::Text(endpoint.to_string()));
        }
        let sql = format!(
            "SELECT d.id, d.tenant, d.owner, d.endpoint, d.route, d.traffic_share, d.deployed_at, d.deployed_by, \
             m.name, v.major, v.minor, v.patch FROM deployments d JOIN model_versions v ON v.id = d.version_id \
             JOIN registered_models m ON m.id = v.model_id WHERE {} AND d.retired_at IS NULL ORDER BY d.endpoint, d.id",
            f.where_sql()
        );
        let rows = f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                const T: &str = "deployments";
                let route: String = col(r, T, "route")?;
                let name: String = col(r, T, "name")?;
                let version = semver_cols(r, T, "")?
                    .ok_or_else(|| RegistryError::Corrupt { what: format!("{T}.version"), message: "NULL".into() })?;
                Ok(Deployment {
                    id: col(r, T, "id")?,
                    scope: scope_col(r, T)?,
                    endpoint: col(r, T, "endpoint")?,
                    version: format!("{name}@{version}"),
                    route: route
                        .parse()
                        .map_err(|_| RegistryError::Corrupt { what: format!("{T}.route"), message: route })?,
                    traffic_share: col(r, T, "traffic_share")?,
                    deployed_at: col(r, T, "deployed_at")?,
                    deployed_by: col(r, T, "deployed_by")?,
                })
            })
            .collect()
    }

    /// Records an alert (a model that failed to load, drift, decay).
    pub async fn raise_alert(
        &self,
        scope: &Scope,
        kind: &str,
        severity: Severity,
        message: &str,
        version_id: Option<i64>,
    ) -> Result<Alert> {
        let (tenant, owner) = scope.key();
        let now = now_ms();
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO alerts (tenant, owner, kind, severity, message, version_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(tenant)
        .bind(owner)
        .bind(kind)
        .bind(severity.as_str())
        .bind(message)
        .bind(version_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(Alert {
            id,
            scope: scope.clone(),
            kind: kind.to_string(),
            severity: severity.as_str().to_string(),
            message: message.to_string(),
            version_id,
            created_at: now,
            resolved_at: None,
        })
    }

    /// Alerts in `scope`, newest first; `open_only` leaves out resolved ones.
    pub async fn alerts(&self, scope: &Scope, open_only: bool, limit: i64) -> Result<Vec<Alert>> {
        let f = Filter::scoped("a", scope);
        let sql = format!(
            "SELECT a.id, a.tenant, a.owner, a.kind, a.severity, a.message, a.version_id, a.created_at, a.resolved_at \
             FROM alerts a WHERE {}{} ORDER BY a.id DESC LIMIT {}",
            f.where_sql(),
            if open_only { " AND a.resolved_at IS NULL" } else { "" },
            f.next_placeholder()
        );
        let rows =
            f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(limit.clamp(1, 100_000)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                const T: &str = "alerts";
                Ok(Alert {
                    id: col(r, T, "id")?,
                    scope: scope_col(r, T)?,
                    kind: col(r, T, "kind")?,
                    severity: col(r, T, "severity")?,
                    message: col(r, T, "message")?,
                    version_id: col(r, T, "version_id")?,
                    created_at: col(r, T, "created_at")?,
                    resolved_at: col(r, T, "resolved_at")?,
                })
            })
            .collect()
    }
}

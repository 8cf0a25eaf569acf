//! Stage changes: promotion (with its gate), archiving, deprecation, rollback and ranking. Each runs
//! in one transaction under the model's row lock and writes the audit log in the same transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::db::{begin_write, col, scope_col, semver_cols, Arg, Filter};
use crate::versions::{resolve, scope_text, version_from_row, ModelVersion, VERSION_SELECT};
use crate::{now_ms, Registry, RegistryError, Result, Scope, Selector, Stage, VersionRef};

/// Conditions a version must meet before it may become production, declared in config:
///
/// ```toml
/// min = { oos_auc = 0.53 }
/// max = { max_drawdown = 0.25 }
/// min_deflated_sharpe = 0.95
/// min_oos_rows = 5000
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Metric → lowest accepted value.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Metric → highest accepted value.
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
    /// Lowest accepted deflated Sharpe ratio (the version's `deflated_sharpe` metric).
    pub min_deflated_sharpe: Option<f64>,
    /// Fewest out-of-sample rows the scores must rest on (the version's `oos_rows` metric).
    pub min_oos_rows: Option<f64>,
}

impl Gate {
    pub fn from_toml(text: &str, file: &str) -> Result<Gate> {
        toml::from_str(text).map_err(|e| RegistryError::InvalidGate { file: file.to_string(), message: e.to_string() })
    }

    /// Every check the version fails, each naming the metric, the bound and the value.
    pub fn failures(&self, version: &ModelVersion) -> Vec<String> {
        let mut lows: Vec<(&str, f64)> = self.min.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        lows.extend(self.min_deflated_sharpe.map(|v| ("deflated_sharpe", v)));
        lows.extend(self.min_oos_rows.map(|v| ("oos_rows", v)));
        let highs = self.max.iter().map(|(k, v)| (k.as_str(), *v));
        let mut failures = Vec::new();
        let mut check = |metric: &str, bound: f64, is_min: bool| match version.metrics.get(metric) {
            None => failures
                .push(format!("{metric} is not recorded for this version (needed: {})", bound_text(bound, is_min))),
            Some(&value) if (is_min && value < bound) || (!is_min && value > bound) => {
                failures.push(format!("{metric} = {value} (needed: {})", bound_text(bound, is_min)))
            }
            Some(_) => {}
        };
        for (metric, bound) in lows {
            check(metric, bound, true);
        }
        for (metric, bound) in highs {
            check(metric, bound, false);
        }
        failures
    }
}

fn bound_text(bound: f64, is_min: bool) -> String {
    format!("{} {bound}", if is_min { "≥" } else { "≤" })
}

/// One version moving from one stage to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageChange {
    pub version: String,
    pub from: Stage,
    pub to: Stage,
}

/// Which end of a metric is better, for ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankOrder {
    HigherIsBetter,
    LowerIsBetter,
}

/// What ranking kept (best first, with the metric) and archived.
#[derive(Debug, Clone, Serialize)]
pub struct RankOutcome {
    pub kept: Vec<(String, Option<f64>)>,
    pub archived: Vec<StageChange>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub model: Option<String>,
    pub version: Option<String>,
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    pub detail: String,
}

/// Why a stage change is refused, or None when it is allowed.
fn refusal(from: Stage, to: Stage) -> Option<&'static str> {
    use Stage::*;
    match (from, to) {
        (a, b) if a == b => Some("it is there already"),
        (_, Draft) => Some("versions never return to draft"),
        (Deprecated, Archived) => None,
        (Deprecated, _) => Some("deprecated versions are retired; register a new version instead"),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn audit(
    conn: &mut AnyConnection,
    scope: &Scope,
    actor: &str,
    action: &str,
    model_id: i64,
    version_id: Option<i64>,
    from: Option<Stage>,
    to: Option<Stage>,
    detail: &str,
) -> Result<()> {
    let (tenant, owner) = scope.key();
    sqlx::query(
        "INSERT INTO audit_log (tenant, owner, at, actor, action, model_id, version_id, from_stage, to_stage, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(owner)
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(model_id)
    .bind(version_id)
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes the model's row lock inside `conn`'s transaction and returns the model's id.
pub(crate) async fn lock_model(conn: &mut AnyConnection, scope: &Scope, name: &str) -> Result<i64> {
    let (tenant, owner) = scope.key();
    let row = sqlx::query(
        "UPDATE registered_models SET updated_at = $4 WHERE tenant = $1 AND owner = $2 AND name = $3 RETURNING id",
    )
    .bind(tenant)
    .bind(owner)
    .bind(name)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(RegistryError::NotFound(format!("no model named {name:?} in scope {scope}"))),
    }
}

async fn set_stage(conn: &mut AnyConnection, version: &ModelVersion, to: Stage) -> Result<()> {
    sqlx::query("UPDATE model_versions SET stage = $1, stage_changed_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(now_ms())
        .bind(version.id)
        .execute(&mut *conn)
        .await
        .map_err(|e| match e {
            // Only reachable if something bypassed the model lock; the database keeps the invariant.
            sqlx::Error::Database(d) if d.is_unique_violation() => RegistryError::InvalidArgument(format!(
                "{} cannot become production: another version of {} is production",
                version.reference(),
                version.name
            )),
            other => other.into(),
        })?;
    Ok(())
}

impl Registry {
    /// Moves a version to `to`. Promoting to production checks `gate` first and archives the
    /// version it replaces; both changes and their audit lines commit together or not at all.
    pub async fn promote(
        &self,
        scope: &Scope,
        reference: &VersionRef,
        to: Stage,
        gate: Option<&Gate>,
        actor: &str,
    ) -> Result<Vec<StageChange>> {
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let model_id = lock_model(&mut tx, scope, &reference.name).await?;
        let version = resolve(&mut tx, scope, reference).await?;
        if let Some(hint) = refusal(version.stage, to) {
            return Err(RegistryError::InvalidTransition {
                version: version.reference(),
                from: version.stage,
                to,
                hint,
            });
        }
        let mut changes = Vec::new();
        if to == Stage::Production {
            if let Some(gate) = gate {
                let failures = gate.failures(&version);
                if !failures.is_empty() {
                    return Err(RegistryError::GateRefused { version: version.reference(), failures });
                }
            }
            let current = VersionRef { name: reference.name.clone(), selector: Selector::Stage(Stage::Production) };
            if let Ok(old) = resolve(&mut tx, scope, &current).await {
                set_stage(&mut tx, &old, Stage::Archived).await?;
                let detail = format!("replaced by {}", version.reference());
                audit(
                    &mut tx,
                    scope,
                    actor,
                    "demote",
                    model_id,
                    Some(old.id),
                    Some(old.stage),
                    Some(Stage::Archived),
                    &detail,
                )
                .await?;
                changes.push(StageChange { version: old.reference(), from: old.stage, to: Stage::Archived });
            }
        }
        set_stage(&mut tx, &version, to).await?;
        let action = match to {
            Stage::Archived => "archive",
            Stage::Deprecated => "deprecate",
            _ => "promote",
        };
        let detail = match (to, gate) {
            (Stage::Production, Some(_)) => format!("{} → {to} (gate passed)", version.reference()),
            _ => format!("{} → {to}", version.reference()),
        };
        audit(&mut tx, scope, actor, action, model_id, Some(version.id), Some(version.stage), Some(to), &detail)
            .await?;
        changes.push(StageChange { version: version.reference(), from: version.stage, to });
        tx.commit().await?;
        Ok(changes)
    }

    /// Puts back the version that was production before the current one (skipping deprecated
    /// versions) and archives the current one.
    pub async fn rollback(&self, scope: &Scope, name: &str, actor: &str) -> Result<Vec<StageChange>> {
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let model_id = lock_model(&mut tx, scope, name).await?;
        let current_ref = VersionRef { name: name.to_string(), selector: Selector::Stage(Stage::Production) };
        let current = resolve(&mut tx, scope, &current_ref).await.map_err(|_| {
            RegistryError::NoRollbackTarget(format!("{name} has no production version to roll back from"))
        })?;
        let earlier: Vec<i64> = sqlx::query(
            "SELECT version_id FROM audit_log WHERE model_id = $1 AND to_stage = 'production' AND version_id <> $2 \
             ORDER BY id DESC",
        )
        .bind(model_id)
        .bind(current.id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| col::<i64>(r, "audit_log", "version_id"))
        .collect::<Result<_>>()?;
        let mut target = None;
        for id in earlier {
            let sql = format!("{VERSION_SELECT} WHERE v.id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *tx).await?;
            let candidate = version_from_row(&row)?;
            if candidate.stage != Stage::Deprecated {
                target = Some(candidate);
                break;
            }
        }
        let Some(previous) = target else {
            return Err(RegistryError::NoRollbackTarget(format!(
                "{} is the only version of {name} that has been in production (deprecated ones are skipped)",
                current.reference()
            )));
        };
        let detail = format!("rollback {} → {}", current.reference(), previous.reference());
        set_stage(&mut tx, &current, Stage::Archived).await?;
        audit(
            &mut tx,
            scope,
            actor,
            "rollback",
            model_id,
            Some(current.id),
            Some(Stage::Production),
            Some(Stage::Archived),
            &detail,
        )
        .await?;
        set_stage(&mut tx, &previous, Stage::Production).await?;
        audit(
            &mut tx,
            scope,
            actor,
            "rollback",
            model_id,
            Some(previous.id),
            Some(previous.stage),
            Some(Stage::Production),
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(vec![
            StageChange { version: current.reference(), from: Stage::Production, to: Stage::Archived },
            StageChange { version: previous.reference(), from: previous.stage, to: Stage::Production },
        ])
    }

    /// Keeps the `keep` best live (draft, staging, production) versions of `name` by `metric` and
    /// archives the rest. The production version is always kept; versions without the metric rank last.
    pub async fn rank(
        &self,
        scope: &Scope,
        name: &str,
        metric: &str,
        keep: usize,
        order: RankOrder,
        actor: &str,
    ) -> Result<RankOutcome> {
        if keep == 0 {
            return Err(RegistryError::InvalidArgument("--keep must be at least 1".into()));
        }
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let model_id = lock_model(&mut tx, scope, name).await?;
        let sql = format!("{VERSION_SELECT} WHERE v.model_id = $1 AND v.stage IN ('draft', 'staging', 'production')");
        let mut live: Vec<ModelVersion> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(model_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(version_from_row)
            .collect::<Result<_>>()?;
        if !live.iter().any(|v| v.metrics.contains_key(metric)) && !live.is_empty() {
            return Err(RegistryError::InvalidArgument(format!(
                "no live version of {name} records {metric:?}; recorded metrics: {}",
                live.iter()
                    .flat_map(|v| v.metrics.keys().cloned())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // Best first; a missing metric ranks last; ties go to the newer version.
        live.sort_by(|a, b| {
            let (x, y) = (a.metrics.get(metric), b.metrics.get(metric));
            let by_metric = match (x, y) {
                (Some(x), Some(y)) => match order {
                    RankOrder::HigherIsBetter => y.total_cmp(x),
                    RankOrder::LowerIsBetter => x.total_cmp(y),
                },
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_metric.then(b.version.cmp(&a.version))
        });
        let mut outcome = RankOutcome { kept: Vec::new(), archived: Vec::new() };
        for (position, version) in live.iter().enumerate() {
            if position < keep || version.stage == Stage::Production {
                outcome.kept.push((version.reference(), version.metrics.get(metric).copied()));
                continue;
            }
            set_stage(&mut tx, version, Stage::Archived).await?;
            let detail = format!("ranked below the top {keep} by {metric}");
            audit(
                &mut tx,
                scope,
                actor,
                "rank",
                model_id,
                Some(version.id),
                Some(version.stage),
                Some(Stage::Archived),
                &detail,
            )
            .await?;
            outcome.archived.push(StageChange {
                version: version.reference(),
                from: version.stage,
                to: Stage::Archived,
            });
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The audit log in `scope`, newest first, optionally for one model.
    pub async fn audit_log(&self, scope: &Scope, model: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>> {
        let mut f = Filter::scoped("a", scope);
        if let Some(name) = model {
            f.push("m.name = ?", Arg::Text(name.to_string()));
        }
        let sql = format!(
            "SELECT a.id, a.tenant, a.owner, a.at, a.actor, a.action, m.name AS model, a.from_stage, a.to_stage, \
             a.detail, v.major, v.minor, v.patch FROM audit_log a \
             LEFT JOIN registered_models m ON m.id = a.model_id LEFT JOIN model_versions v ON v.id = a.version_id \
             WHERE {} ORDER BY a.id DESC LIMIT {}",
            f.where_sql(),
            f.next_placeholder()
        );
        let rows =
            f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(limit.clamp(1, 100_000)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                const T: &str = "audit_log";
                let version = semver_cols(r, T, "")?.map(|v| v.to_string());
                Ok(AuditEntry {
                    id: col(r, T, "id")?,
                    scope: scope_col(r, T)?,
                    at: col(r, T, "at")?,
                    actor: col(r, T, "actor")?,
                    action: col(r, T, "action")?,
                    model: col(r, T, "model")?,
                    version,
                    from_stage: col(r, T, "from_stage")?,
                    to_stage: col(r, T, "to_stage")?,
                    detail: col(r, T, "detail")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_lifecycle() {
        use Stage::*;
        assert!(refusal(Draft, Staging).is_none());
        assert!(refusal(Staging, Production).is_none());
        assert!(refusal(Archived, Production).is_none());
        assert!(refusal(Production, Archived).is_none());
        assert!(refusal(Deprecated, Archived).is_none());
        assert!(refusal(Production, Production).is_some());
        assert!(refusal(Staging, Draft).is_some());
        assert!(refusal(Deprecated, Production).is_some());
    }

    #[test]
    fn gates_name_every_failed_check() {
        let gate =
            Gate::from_toml("min = { oos_auc = 0.55 }\nmax = { max_drawdown = 0.2 }\nmin_oos_rows = 1000\n", "g.toml")
                .unwrap();
        let mut metrics = BTreeMap::new();
        metrics.insert("oos_auc".to_string(), 0.54);
        metrics.insert("max_drawdown".to_string(), 0.1);
        let version = ModelVersion {
            id: 1,
            name: "m".into(),
            scope: Scope::Platform,
            version: crate::SemVer::FIRST,
            stage: Stage::Staging,
            family: String::new(),
            task: String::new(),
            metrics,
            params: serde_json::Value::Null,
            feature_set: String::new(),
            feature_set_hash: String::new(),
            feature_names: vec![],
            label: serde_json::Value::Null,
            label_lookahead: String::new(),
            dataset_hash: String::new(),
            code_version: String::new(),
            parent: None,
            run_id: None,
            artifact_uri: String::new(),
            description: String::new(),
            created_at: 0,
            created_by: String::new(),
            stage_changed_at: 0,
            evaluations: vec![],
        };
        let failures = gate.failures(&version);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].contains("oos_auc = 0.54") && failures[0].contains("≥ 0.55"), "{failures:?}");
        assert!(failures[1].contains("oos_rows is not recorded"), "{failures:?}");
        let err = Gate::from_toml("min_sharpe = 1.0\n", "gate.toml").unwrap_err().to_string();
        assert!(err.contains("gate.toml") && err.contains("min_sharpe"), "{err}");
    }
}

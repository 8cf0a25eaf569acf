//! The served-prediction log and realised outcomes. The server writes predictions in batches off its
//! request path and records feedback one at a time, durably, before it answers.

use serde::Serialize;
use sqlx::Row;

use crate::db::{begin_write, col, json_col, scope_col, Arg, Filter};
use crate::versions::scope_text;
use crate::{now_ms, Backend, Registry, RegistryError, Result, Scope};

/// One served prediction.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionRecord {
    /// 32 hex digits, made by the server.
    pub id: String,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub endpoint: String,
    /// The version that answered (None when a fallback rule did).
    pub version_id: Option<i64>,
    /// `name@1.2.0`, or `fallback`.
    pub version: String,
    /// champion, canary, shadow or fallback.
    pub route: String,
    /// model or fallback.
    pub source: String,
    /// The row the model saw, in its feature order (None when a fallback answered).
    pub features: Option<Vec<f64>>,
    /// Context: caller key, symbol and bar of a live prediction, the answer a shadow score shadowed,
    /// a fallback's request.
    pub inputs: serde_json::Value,
    pub output: serde_json::Value,
    pub latency_us: i64,
    pub created_at: i64,
}

/// A realised outcome for a prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Feedback {
    pub prediction_id: String,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub outcome: f64,
    pub recorded_at: i64,
    pub recorded_by: String,
}

/// Rows per INSERT statement: 13 parameters each stays far below SQLite's and PostgreSQL's limits.
const ROWS_PER_STATEMENT: usize = 256;

impl Registry {
    /// Appends predictions in one transaction (all or none).
    pub async fn log_predictions(&self, records: &[PredictionRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = begin_write(&self.pool, self.backend).await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO predictions (id, tenant, owner, endpoint, version_id, version, route, source, features, \
                 inputs, output, latency_us, created_at) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                let placeholders: Vec<String> = match self.backend {
                    // Anonymous `?`: SQLite looks a named parameter up by a linear scan of every
                    // name, which made binding 3,328 `$n` parameters quadratic (a third of the
                    // server's CPU under load).
                    Backend::Sqlite => vec!["?".to_string(); 13],
                    Backend::Postgres => (1..=13).map(|k| format!("${}", i * 13 + k)).collect(),
                };
                sql.push_str(&placeholders.join(","));
                sql.push(')');
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                let (tenant, owner) = r.scope.key();
                query = query
                    .bind(r.id.clone())
                    .bind(tenant.to_string())
                    .bind(owner.to_string())
                    .bind(r.endpoint.clone())
                    .bind(r.version_id)
                    .bind(r.version.clone())
                    .bind(r.route.clone())
                    .bind(r.source.clone())
                    .bind(r.features.as_deref().map(encode_row))
                    .bind(r.inputs.to_string())
                    .bind(r.output.to_string())
                    .bind(r.latency_us)
                    .bind(r.created_at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One logged prediction of `scope`.
    pub async fn prediction(&self, scope: &Scope, id: &str) -> Result<PredictionRecord> {
        let mut f = Filter::scoped("p", scope);
        f.push("p.id = ?", Arg::Text(id.to_string()));
        self.prediction_rows(f, 1).await?.pop().ok_or_else(|| {
            RegistryError::NotFound(format!("no prediction {id:?} in scope {scope} (ids are 32 hex digits)"))
        })
    }

    /// Logged predictions of `scope`, newest first, optionally of one endpoint.
    pub async fn predictions(
        &self,
        scope: &Scope,
        endpoint: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PredictionRecord>> {
        let mut f = Filter::scoped("p", scope);
        if let Some(endpoint) = endpoint {
            f.push("p.endpoint = ?", Arg::Text(endpoint.to_string()));
        }
        self.prediction_rows(f, limit).await
    }

    async fn prediction_rows(&self, f: Filter, limit: i64) -> Result<Vec<PredictionRecord>> {
        let sql = format!(
            "SELECT p.id, p.tenant, p.owner, p.endpoint, p.version_id, p.version, p.route, p.source, p.features, \
             p.inputs, p.output, p.latency_us, p.created_at FROM predictions p WHERE {} ORDER BY p.created_at DESC, p.id \
             LIMIT {}",
            f.where_sql(),
            f.next_placeholder()
        );
        let rows =
            f.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(limit.clamp(1, 1_000_000)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                const T: &str = "predictions";
                Ok(PredictionRecord {
                    id: col(r, T, "id")?,
                    scope: scope_col(r, T)?,
                    endpoint: col(r, T, "endpoint")?,
                    version_id: col(r, T, "version_id")?,
                    version: col(r, T, "version")?,
                    route: col(r, T, "route")?,
                    source: col(r, T, "source")?,
                    features: col::<Option<Vec<u8>>>(r, T, "features")?.map(|b| decode_row(&b)).transpose()?,
                    inputs: json_col(r, T, "inputs")?,
                    output: json_col(r, T, "output")?,
                    latency_us: col(r, T, "latency_us")?,
                    created_at: col(r, T, "created_at")?,
                })
            })
            .collect()
    }

    /// Records the realised outcome of a logged prediction, committed before this returns. A
    /// prediction has one outcome: a second one is refused, not overwritten.
    pub async fn record_feedback(
        &self,
        scope: &Scope,
        prediction_id: &str,
        outcome: f64,
        actor: &str,
    ) -> Result<Feedback> {
        if !outcome.is_finite() {
            return Err(RegistryError::InvalidArgument(format!("outcome {outcome} is not a finite number")));
        }
        let (tenant, owner) = scope.key();
        let now = now_ms();
        let mut tx = begin_write(&self.pool, self.backend).await?;
        let known = sqlx::query("SELECT 1 FROM predictions WHERE id = $1 AND tenant = $2 AND owner = $3")
            .bind(prediction_id)
            .bind(tenant)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(RegistryError::NotFound(format!("no prediction {prediction_id:?} in scope {scope}")));
        }
        let existing = sqlx::query("SELECT outcome FROM feedback WHERE prediction_id = $1")
            .bind(prediction_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            let previous: f64 = row.try_get(0)?;
            return Err(RegistryError::Conflict(format!(
                "prediction {prediction_id} already has outcome {previous}; outcomes are not overwritten"
            )));
        }
        sqlx::query(
            "INSERT INTO feedback (prediction_id, tenant, owner, outcome, recorded_at, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(prediction_id)
        .bind(tenant)
        .bind(owner)
        .bind(outcome)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Feedback {
            prediction_id: prediction_id.to_string(),
            scope: scope.clone(),
            outcome,
            recorded_at: now,
            recorded_by: actor.to_string(),
        })
    }

    /// The outcome recorded for a prediction, if any.
    pub async fn feedback(&self, scope: &Scope, prediction_id: &str) -> Result<Option<Feedback>> {
        let (tenant, owner) = scope.key();
        let row = sqlx::query(
            "SELECT prediction_id, tenant, owner, outcome, recorded_at, recorded_by FROM feedback \
             WHERE prediction_id = $1 AND tenant = $2 AND owner = $3",
        )
        .bind(prediction_id)
        .bind(tenant)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            const T: &str = "feedback";
            Ok(Feedback {
                prediction_id: col(&r, T, "prediction_id")?,
                scope: scope_col(&r, T)?,
                outcome: col(&r, T, "outcome")?,
                recorded_at: col(&r, T, "recorded_at")?,
                recorded_by: col(&r, T, "recorded_by")?,
            })
        })
        .transpose()
    }
}

/// A feature row as stored: little-endian f64s, exact and a quarter of the size of JSON text.
fn encode_row(row: &[f64]) -> Vec<u8> {
    row.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_row(bytes: &[u8]) -> Result<Vec<f64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(RegistryError::Corrupt {
            what: "predictions.features".into(),
            message: format!("{} bytes is not a whole number of f64 values", bytes.len()),
        });
    }
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

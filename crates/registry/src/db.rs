//! Connection set-up and migrations: the only place where SQLite and PostgreSQL are told apart.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::{now_ms, Backend, RegistryError, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Applied in order, each once, each in its own transaction. Never edit a released migration: add one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "registry",
        sqlite: include_str!("../migrations/sqlite/0001_registry.sql"),
        postgres: include_str!("../migrations/postgres/0001_registry.sql"),
    },
    Migration {
        version: 2,
        name: "predictions",
        sqlite: include_str!("../migrations/sqlite/0002_predictions.sql"),
        postgres: include_str!("../migrations/postgres/0002_predictions.sql"),
    },
];

/// Any PostgreSQL session-level advisory lock key works as long as it is ours alone.
const MIGRATION_LOCK_KEY: i64 = 0x5155_414e_5450_4950; // "QUANTPIP"

pub(crate) async fn connect(url: &str) -> Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let invalid = |message: &str| RegistryError::InvalidUrl { url: url.to_string(), message: message.to_string() };
    let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_string())
    } else if url.starts_with("sqlite:") {
        // Create the file when it does not exist yet, unless the caller chose a mode.
        let url = if url.contains("mode=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        (Backend::Sqlite, url)
    } else {
        return Err(invalid("expected sqlite:PATH, sqlite:///ABSOLUTE/PATH or postgres://USER@HOST:PORT/DATABASE"));
    };
    let options = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // Writers queue behind each other instead of failing at once.
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                }
                Ok(())
            })
        });
    let pool = options.connect(&url).await.map_err(|e| invalid(&e.to_string()))?;
    if backend == Backend::Sqlite {
        // WAL lets readers proceed while one writer commits; switching needs a moment without other
        // connections, so retry briefly when a concurrent process holds the file.
        let mut attempt = 0;
        loop {
            match sqlx::query("PRAGMA journal_mode = WAL").fetch_optional(&pool).await {
                Ok(_) => break,
                Err(_) if attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((pool, backend))
}

/// Begins a write transaction. SQLite's `BEGIN IMMEDIATE` takes the write lock up front, so a
/// transaction never fails half-way because another writer committed after it read.
pub(crate) async fn begin_write(pool: &AnyPool, backend: Backend) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
}

pub(crate) async fn migrate(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut tx = begin_write(pool, backend).await?;
    if backend == Backend::Postgres {
        // Two processes opening a fresh database at once: the second waits, then sees the tables.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK_KEY).execute(&mut *tx).await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS quantpipe_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM quantpipe_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row: &AnyRow| row.try_get::<i64, _>(0))
        .collect::<std::result::Result<_, _>>()?;
    if let Some(&newest) = applied.last() {
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if newest > known {
            return Err(RegistryError::Migration {
                version: newest,
                name: "unknown".into(),
                message: format!(
                    "the database was migrated by a newer quantpipe (schema {newest}, this build knows up to {known})"
                ),
            });
        }
    }
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| RegistryError::Migration {
            version: m.version,
            name: m.name.into(),
            message: e.to_string(),
        })?;
        sqlx::query("INSERT INTO quantpipe_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A dynamically built query's bound values, in placeholder order.
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// A WHERE clause built from optional filters, with `$n` placeholders numbered as they are added.
pub(crate) struct Filter {
    pub clauses: Vec<String>,
    pub args: Vec<Arg>,
}

impl Filter {
    pub fn scoped(table: &str, scope: &quantpipe_core::Scope) -> Filter {
        let (tenant, owner) = scope.key();
        Filter {
            clauses: vec![format!("{table}.tenant = $1"), format!("{table}.owner = $2")],
            args: vec![Arg::Text(tenant.to_string()), Arg::Text(owner.to_string())],
        }
    }

    /// Adds `clause` with `?` standing for the next placeholder.
    pub fn push(&mut self, clause: &str, arg: Arg) {
        self.args.push(arg);
        self.clauses.push(clause.replace('?', &format!("${}", self.args.len())));
    }

    /// The next placeholder's text, for a LIMIT bound after the filters.
    pub fn next_placeholder(&self) -> String {
        format!("${}", self.args.len() + 1)
    }

    pub fn where_sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    pub fn bind<'q>(
        self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for arg in self.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
            };
        }
        query
    }
}

/// Reads a column, turning a type mismatch into an error that names the table and column.
pub(crate) fn col<'r, T>(row: &'r AnyRow, table: &str, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(column)
        .map_err(|e| RegistryError::Corrupt { what: format!("{table}.{column}"), message: e.to_string() })
}

/// The owner scope a row carries in its `tenant` and `owner` columns.
pub(crate) fn scope_col(row: &AnyRow, table: &str) -> Result<quantpipe_core::Scope> {
    let tenant: String = col(row, table, "tenant")?;
    let owner: String = col(row, table, "owner")?;
    quantpipe_core::Scope::from_key(&tenant, &owner)
        .map_err(|e| RegistryError::Corrupt { what: format!("{table}.tenant/owner"), message: e.to_string() })
}

/// A version number from three columns named `{prefix}major`, `{prefix}minor`, `{prefix}patch`;
/// None when they are NULL (an outer join that found nothing).
pub(crate) fn semver_cols(row: &AnyRow, table: &str, prefix: &str) -> Result<Option<crate::SemVer>> {
    let part = |name: &str| col::<Option<i64>>(row, table, &format!("{prefix}{name}"));
    Ok(match (part("major")?, part("minor")?, part("patch")?) {
        (Some(major), Some(minor), Some(patch)) => Some(crate::SemVer { major, minor, patch }),
        _ => None,
    })
}

pub(crate) fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, table: &str, column: &str) -> Result<T> {
    let text: String = col(row, table, column)?;
    serde_json::from_str(&text)
        .map_err(|e| RegistryError::Corrupt { what: format!("{table}.{column}"), message: e.to_string() })
}

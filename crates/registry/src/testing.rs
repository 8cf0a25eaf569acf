//! For tests, here and in the crates above (feature `testing`): a fresh registry per test on each
//! backend, a SQLite file in a temporary directory or a new database on the PostgreSQL server named
//! by `QUANTPIPE_DATABASE_URL` (default: the machine's local server). PostgreSQL tests never skip: a
//! missing server is a failure that says how to fix it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{ArtifactStore, Registry};
use sqlx::Connection;

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestRegistry {
    pub registry: Registry,
    pub url: String,
    pub dir: tempfile::TempDir,
    postgres_db: Option<String>,
}

impl TestRegistry {
    pub fn label(&self) -> &'static str {
        if self.postgres_db.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// A second, independent connection pool to the same registry (another process, in effect).
    pub async fn reopen(&self) -> Registry {
        Registry::open(&self.url, ArtifactStore::Local { root: self.dir.path().join("artifacts") }).await.unwrap()
    }

    pub async fn cleanup(self) {
        self.registry.close().await;
        if let Some(db) = self.postgres_db {
            let mut conn = sqlx::postgres::PgConnection::connect(&postgres_base()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

pub fn postgres_base() -> String {
    std::env::var("QUANTPIPE_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_string())
}

pub async fn sqlite() -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let registry = Registry::open(&url, ArtifactStore::Local { root: dir.path().join("artifacts") }).await.unwrap();
    TestRegistry { registry, url, dir, postgres_db: None }
}

pub async fn postgres() -> TestRegistry {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = postgres_base();
    let mut conn = sqlx::postgres::PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {base} is needed by the registry tests ({e}); start it or point \
             QUANTPIPE_DATABASE_URL at one (trust or password auth, a database the user may CREATE DATABASE from)"
        )
    });
    let db = format!("qp_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut conn).await.unwrap();
    let (prefix, _) = base.rsplit_once('/').expect("a database URL ends with /DATABASE");
    let url = format!("{prefix}/{db}");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&url, ArtifactStore::Local { root: dir.path().join("artifacts") }).await.unwrap();
    TestRegistry { registry, url, dir, postgres_db: Some(db) }
}

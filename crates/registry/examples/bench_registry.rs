//! Registry read latency at scale: 100k model versions (1,000 model names) and 1M runs, spread over
//! the platform and 9 tenants, then the listing and search calls the CLI and the API make, each
//! repeated, with p50 / p95 / max. Rows are seeded in bulk with SQL (the registry's own register()
//! would also write 100k artifact directories); every measured call goes through the public API.
//!
//! ```text
//! cargo run --release -p quantpipe-registry --example bench_registry -- sqlite
//! cargo run --release -p quantpipe-registry --example bench_registry -- postgres://postgres@127.0.0.1:5432/test
//! ```
//! For PostgreSQL the example creates (and afterwards drops) its own database next to the one named.

use std::time::{Duration, Instant};

use quantpipe_registry::{ArtifactStore, Registry, RunFilter, RunStatus, Scope, Stage, VersionFilter, VersionRef};
use sqlx::{AnyPool, Connection};

const MODELS: usize = 1_000;
const VERSIONS_PER_MODEL: usize = 100;
const RUNS: usize = 1_000_000;
const TENANTS: [&str; 10] = ["", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];
const REPEATS: usize = 200;

fn main() {
    let target = std::env::args().nth(1).unwrap_or_else(|| "sqlite".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(&target));
}

async fn run(target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (url, cleanup) = if target == "sqlite" {
        (format!("sqlite://{}", dir.path().join("registry.db").display()), None)
    } else {
        let db = format!("qp_bench_{}", std::process::id());
        let mut conn = sqlx::postgres::PgConnection::connect(target).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut conn).await.unwrap();
        let (prefix, _) = target.rsplit_once('/').unwrap();
        (format!("{prefix}/{db}"), Some((conn, db)))
    };
    let registry = Registry::open(&url, ArtifactStore::Local { root: dir.path().join("artifacts") }).await.unwrap();
    let seed_started = Instant::now();
    let pool = AnyPool::connect(&url).await.unwrap();
    seed(&pool).await;
    pool.close().await;
    println!(
        "{}: seeded {} versions of {MODELS} models and {RUNS} runs in {:.1} s",
        if cleanup.is_some() { "postgres" } else { "sqlite" },
        MODELS * VERSIONS_PER_MODEL,
        seed_started.elapsed().as_secs_f64()
    );

    let platform = Scope::Platform;
    let tenant = Scope::parse("t3").unwrap();
    let mut report = Vec::new();
    let name = |i: usize| format!("model_{i:04}");
    macro_rules! measure {
        ($label:expr, $expected:expr, $call:expr) => {{
            let mut times = Vec::with_capacity(REPEATS);
            for i in 0..REPEATS {
                let started = Instant::now();
                let rows = $call(i).await;
                times.push(started.elapsed());
                assert!(rows as i64 >= $expected as i64, "{}: {} rows", $label, rows);
            }
            times.sort();
            report.push(($label, times[REPEATS / 2], times[REPEATS * 95 / 100], times[REPEATS - 1]));
        }};
    }
    measure!("models list (newest 50)", 50, |_| async {
        registry.versions(&platform, &VersionFilter::default()).await.unwrap().len()
    });
    measure!("models list --stage production", 50, |_| async {
        let f = VersionFilter { stage: Some(Stage::Production), ..Default::default() };
        registry.versions(&platform, &f).await.unwrap().len()
    });
    measure!("models list --name (one model)", 50, |i: usize| {
        let f = VersionFilter { name: Some(name(i * 7 % MODELS)), ..Default::default() };
        let registry = &registry;
        async move { registry.versions(&Scope::parse(TENANTS_SCOPE[i * 7 % MODELS % 10]).unwrap(), &f).await.unwrap().len() }
    });
    measure!("models list --search (10% of names)", 50, |i: usize| {
        let f = VersionFilter { name_contains: Some(format!("_{:02}", i % 10)), ..Default::default() };
        let registry = &registry;
        async move { registry.versions(&Scope::Platform, &f).await.unwrap().len() }
    });
    measure!("models list --search (no match)", 0, |_| async {
        let f = VersionFilter { name_contains: Some("zzz".into()), ..Default::default() };
        registry.versions(&platform, &f).await.unwrap().len()
    });
    measure!("models list, tenant scope, keyset page", 50, |_| async {
        let first = registry.versions(&tenant, &VersionFilter { limit: Some(1), ..Default::default() }).await.unwrap();
        let before = first[0].id - 50 * 19;
        let f = VersionFilter { before_id: Some(before), ..Default::default() };
        registry.versions(&tenant, &f).await.unwrap().len()
    });
    measure!("models show NAME@production", 1, |i: usize| {
        let r = VersionRef::parse(&format!("{}@production", name(i * 10 % MODELS))).unwrap();
        let registry = &registry;
        async move { usize::from(registry.version(&Scope::Platform, &r).await.is_ok()) }
    });
    measure!("models show NAME@latest", 1, |i: usize| {
        let r = VersionRef::parse(&name(i * 10 % MODELS)).unwrap();
        let registry = &registry;
        async move { usize::from(registry.version(&Scope::Platform, &r).await.is_ok()) }
    });
    measure!("runs list (newest 50)", 50, |_| async {
        registry.runs(&platform, &RunFilter::default()).await.unwrap().len()
    });
    measure!("runs list --experiment", 50, |i: usize| {
        let f = RunFilter { experiment: Some(format!("exp_{:03}", i % 100 * 10)), ..Default::default() };
        let registry = &registry;
        async move { registry.runs(&Scope::Platform, &f).await.unwrap().len() }
    });
    measure!("runs list --status failed", 50, |_| async {
        let f = RunFilter { status: Some(RunStatus::Failed), ..Default::default() };
        registry.runs(&platform, &f).await.unwrap().len()
    });
    println!("| call | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|");
    for (label, p50, p95, max) in &report {
        println!("| {label} | {:.2} | {:.2} | {:.2} |", ms(*p50), ms(*p95), ms(*max));
    }
    let worst = report.iter().map(|r| r.2).max().unwrap();
    println!("worst p95: {:.2} ms (goal ≤ 50 ms)", ms(worst));
    registry.close().await;
    if let Some((mut conn, db)) = cleanup {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// Tenant of model i: models are spread round-robin over the scopes.
const TENANTS_SCOPE: [&str; 10] = ["platform", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn exec_batches(pool: &AnyPool, head: &str, rows: impl Iterator<Item = String>) {
    let mut tx = pool.begin().await.unwrap();
    let mut batch = Vec::with_capacity(1000);
    let flush = |batch: &mut Vec<String>| {
        let sql = format!("{head} VALUES {}", batch.join(","));
        batch.clear();
        sql
    };
    for row in rows {
        batch.push(row);
        if batch.len() == 1000 {
            let sql = flush(&mut batch);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.unwrap();
        }
    }
    if !batch.is_empty() {
        let sql = flush(&mut batch);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn seed(pool: &AnyPool) {
    let now = 1_700_000_000_000i64;
    exec_batches(
        pool,
        "INSERT INTO experiments (id, tenant, owner, name, created_at, created_by)",
        (0..1000).map(|e| format!("({}, '{}', '', 'exp_{e:03}', {now}, 'bench')", e + 1, TENANTS[e % 10])),
    )
    .await;
    exec_batches(
        pool,
        "INSERT INTO registered_models (id, tenant, owner, name, created_at, updated_at)",
        (0..MODELS).map(|m| format!("({}, '{}', '', 'model_{m:04}', {now}, {now})", m + 1, TENANTS[m % 10])),
    )
    .await;
    // Versions interleaved in time across models, as real registrations would be.
    let metrics = r#"{"oos_roc_auc": 0.55, "oos_rows": 5000}"#;
    let params = r#"{"num_leaves": 31, "learning_rate": 0.05}"#;
    let features = r#"["rsi_14", "atr_14", "macd"]"#;
    exec_batches(
        pool,
        "INSERT INTO model_versions (id, model_id, tenant, owner, major, minor, patch, stage, family, task, metrics, \
         params, feature_set, feature_set_hash, feature_names, label, label_lookahead, dataset_hash, code_version, \
         parent_id, run_id, artifact_uri, description, created_at, created_by, stage_changed_at)",
        (0..MODELS * VERSIONS_PER_MODEL).map(|k| {
            let (m, v) = (k % MODELS, k / MODELS);
            let stage = if v == VERSIONS_PER_MODEL - 1 {
                "production"
            } else if v >= VERSIONS_PER_MODEL - 5 {
                "staging"
            } else {
                "archived"
            };
            format!(
                "({id}, {model}, '{tenant}', '', 1, {v}, 0, '{stage}', 'lightgbm', 'binary', '{metrics}', '{params}', \
                 'standard', 'fs1', '{features}', '{{}}', '1h', 'd{k}', 'bench', NULL, NULL, \
                 'file:///bench/{m}/{v}', '', {t}, 'bench', {t})",
                id = k + 1,
                model = m + 1,
                tenant = TENANTS[m % 10],
                t = now + k as i64,
            )
        }),
    )
    .await;
    exec_batches(
        pool,
        "INSERT INTO runs (id, tenant, owner, experiment_id, status, config, params, host, code_version, started_at, \
         ended_at, compute_seconds, error, created_by)",
        (0..RUNS).map(|r| {
            let e = r % 1000;
            let failed = r % 50 == 0;
            format!(
                "({}, '{}', '', {}, '{}', '{{\"model\": \"lightgbm\"}}', '{{\"seed\": {r}}}', 'bench-host', 'bench', \
                 {t}, {t}, 1.5, {}, 'bench')",
                r + 1,
                TENANTS[e % 10],
                e + 1,
                if failed { "failed" } else { "succeeded" },
                if failed { "'labels: too few rows'" } else { "NULL" },
                t = now + r as i64,
            )
        }),
    )
    .await;
    if sqlx::query("SELECT 1 FROM pg_catalog.pg_class LIMIT 1").fetch_optional(pool).await.is_ok() {
        // PostgreSQL: identity columns continue after the seeded ids; fresh statistics for the planner.
        for table in ["experiments", "registered_models", "model_versions", "runs"] {
            let sql = format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        }
        sqlx::raw_sql("ANALYZE").execute(pool).await.unwrap();
    } else {
        sqlx::raw_sql("ANALYZE").execute(pool).await.unwrap();
    }
}

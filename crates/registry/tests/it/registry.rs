//! The registry's behaviour, each scenario on SQLite and on PostgreSQL.

use std::collections::BTreeMap;

use crate::common::TestRegistry;
use quantpipe_registry::{
    Evaluation, Gate, NewVersion, RankOrder, RegistryError, Route, RunFilter, RunStatus, Scope, Severity, Stage,
    VersionFilter, VersionRef,
};

fn new_version(name: &str, auc: f64) -> NewVersion {
    NewVersion {
        name: name.into(),
        family: "lightgbm".into(),
        task: "binary".into(),
        params: serde_json::json!({"num_leaves": 31, "learning_rate": 0.05}),
        feature_set: "standard".into(),
        feature_set_hash: "fs-1".into(),
        feature_names: vec!["rsi_14".into(), "atr_14".into()],
        label: serde_json::json!({"kind": "horizon", "horizons": ["1h"]}),
        label_lookahead: "1h".into(),
        dataset_hash: "data-1".into(),
        code_version: "quantpipe test".into(),
        metrics: BTreeMap::from([("oos_auc".to_string(), auc), ("oos_rows".to_string(), 5000.0)]),
        evaluations: vec![Evaluation { split: "test".into(), metric: "auc".into(), value: auc }],
        ..Default::default()
    }
}

fn files(tag: &str) -> Vec<(String, Vec<u8>)> {
    vec![("model.txt".into(), format!("tree\n{tag}\n").into_bytes()), ("model.json".into(), b"{}".to_vec())]
}

fn r(raw: &str) -> VersionRef {
    VersionRef::parse(raw).unwrap()
}

const P: Scope = Scope::Platform;

async fn versions_bump_and_directories_describe_themselves(t: &TestRegistry) {
    let reg = &t.registry;
    let v1 = reg.register(&P, &new_version("direction", 0.53), files("a"), "ana").await.unwrap();
    assert_eq!(v1.version.to_string(), "1.0.0");
    assert_eq!(v1.stage, Stage::Draft);
    let retrain = NewVersion { dataset_hash: "data-2".into(), ..new_version("direction", 0.54) };
    let v2 = reg.register(&P, &retrain, files("b"), "ana").await.unwrap();
    assert_eq!(v2.version.to_string(), "1.0.1");
    let tuned = NewVersion { params: serde_json::json!({"num_leaves": 63}), ..retrain.clone() };
    let v3 = reg.register(&P, &tuned, files("c"), "ana").await.unwrap();
    assert_eq!(v3.version.to_string(), "1.1.0");
    let linear = NewVersion { family: "linear".into(), stage: Some(Stage::Staging), ..tuned.clone() };
    let v4 = reg.register(&P, &linear, files("d"), "bo").await.unwrap();
    assert_eq!((v4.version.to_string(), v4.stage), ("2.0.0".to_string(), Stage::Staging));

    // Read back: lineage, metrics, evaluations.
    let shown = reg.version(&P, &r("direction@1.1.0")).await.unwrap();
    assert_eq!(shown.parent.map(|p| p.to_string()).as_deref(), Some("1.0.1"));
    assert_eq!(shown.params, serde_json::json!({"num_leaves": 63}));
    assert_eq!(shown.metrics["oos_auc"], 0.54);
    assert_eq!(shown.evaluations, vec![Evaluation { split: "test".into(), metric: "auc".into(), value: 0.54 }]);
    assert_eq!(reg.version(&P, &r("direction")).await.unwrap().version.to_string(), "2.0.0");
    assert_eq!(reg.version(&P, &r("direction@staging")).await.unwrap().version.to_string(), "2.0.0");
    assert_eq!(reg.version(&P, &r("direction@draft")).await.unwrap().version.to_string(), "1.1.0");

    // The directory holds the model files and describes itself.
    let dir = reg.artifacts().local_dir(&shown.artifact_uri).unwrap();
    assert!(dir.ends_with("platform/direction/1.1.0"), "{}", dir.display());
    assert_eq!(std::fs::read(dir.join("model.txt")).unwrap(), b"tree\nc\n");
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["version"], "1.1.0");
    assert_eq!(metadata["lineage"]["parent_version"], "1.0.1");
    assert_eq!(metadata["lineage"]["dataset_hash"], "data-2");
    assert_eq!(metadata["lineage"]["version_reason"], "hyperparameters changed");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["features"], serde_json::json!(["rsi_14", "atr_14"]));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("# direction 1.1.0") && readme.contains("oos_auc"), "{readme}");

    // Bad input is refused before anything is stored.
    let nan =
        NewVersion { metrics: BTreeMap::from([("oos_auc".to_string(), f64::NAN)]), ..new_version("direction", 0.5) };
    let err = reg.register(&P, &nan, files("x"), "ana").await.unwrap_err().to_string();
    assert!(err.contains("oos_auc"), "{err}");
    let err = reg.register(&P, &new_version("../etc", 0.5), files("x"), "ana").await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidName(_)), "{err}");
    let mut straight_to_production = new_version("direction", 0.5);
    straight_to_production.stage = Some(Stage::Production);
    assert!(reg.register(&P, &straight_to_production, files("x"), "ana").await.is_err());
    let err = reg.version(&P, &r("direction@9.9.9")).await.unwrap_err().to_string();
    assert!(err.contains("1.0.0 (draft)") && err.contains("2.0.0 (staging)"), "{err}");
    assert_eq!(reg.versions(&P, &VersionFilter::default()).await.unwrap().len(), 4);
}
on_both_backends!(versions, versions_bump_and_directories_describe_themselves);

async fn lifecycle_gate_rollback_and_audit(t: &TestRegistry) {
    let reg = &t.registry;
    for (auc, data) in [(0.52, "d1"), (0.56, "d2"), (0.57, "d3")] {
        let v = NewVersion { dataset_hash: data.into(), ..new_version("dir", auc) };
        reg.register(&P, &v, files(data), "ana").await.unwrap();
    }
    let gate = Gate::from_toml("min = { oos_auc = 0.55 }\nmin_oos_rows = 1000\n", "gate.toml").unwrap();
    let err = reg.promote(&P, &r("dir@1.0.0"), Stage::Production, Some(&gate), "ana").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::GateRefused { .. }) && text.contains("oos_auc = 0.52"), "{text}");
    assert!(
        reg.version(&P, &r("dir@1.0.0")).await.unwrap().stage == Stage::Draft,
        "a refused promotion changed nothing"
    );

    let changes = reg.promote(&P, &r("dir@1.0.1"), Stage::Production, Some(&gate), "ana").await.unwrap();
    assert_eq!(changes.len(), 1);
    let changes = reg.promote(&P, &r("dir@1.0.2"), Stage::Production, Some(&gate), "bo").await.unwrap();
    assert_eq!(changes[0].version, "dir@1.0.1");
    assert_eq!((changes[0].from, changes[0].to), (Stage::Production, Stage::Archived));
    assert_eq!(reg.version(&P, &r("dir@production")).await.unwrap().version.to_string(), "1.0.2");

    let back = reg.rollback(&P, "dir", "carl").await.unwrap();
    assert_eq!(back[1].version, "dir@1.0.1");
    assert_eq!(reg.version(&P, &r("dir@production")).await.unwrap().version.to_string(), "1.0.1");
    assert_eq!(reg.version(&P, &r("dir@1.0.2")).await.unwrap().stage, Stage::Archived);

    // Refused transitions name the version and the stages.
    let err = reg.promote(&P, &r("dir@1.0.1"), Stage::Production, None, "ana").await.unwrap_err().to_string();
    assert!(err.contains("dir@1.0.1 is production"), "{err}");
    let err = reg.promote(&P, &r("dir@1.0.2"), Stage::Draft, None, "ana").await.unwrap_err().to_string();
    assert!(err.contains("never return to draft"), "{err}");
    reg.promote(&P, &r("dir@1.0.0"), Stage::Deprecated, None, "ana").await.unwrap();
    assert!(reg.promote(&P, &r("dir@1.0.0"), Stage::Production, None, "ana").await.is_err());

    // Rolling back again returns to 1.0.2 (the production before the current one).
    reg.rollback(&P, "dir", "carl").await.unwrap();
    assert_eq!(reg.version(&P, &r("dir@production")).await.unwrap().version.to_string(), "1.0.2");
    let err = reg.rollback(&P, "nothing", "carl").await.unwrap_err().to_string();
    assert!(err.contains("no model named \"nothing\""), "{err}");

    let log = reg.audit_log(&P, Some("dir"), 100).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "register",
            "register",
            "register",
            "promote",
            "demote",
            "promote",
            "rollback",
            "rollback",
            "deprecate",
            "rollback",
            "rollback"
        ]
    );
    assert_eq!(log[0].actor, "carl");
    assert!(log.iter().any(|e| e.detail.contains("gate passed")));
}
on_both_backends!(lifecycle, lifecycle_gate_rollback_and_audit);

async fn concurrent_promotions_leave_one_production(t: &TestRegistry) {
    let reg = &t.registry;
    let n = 8;
    for i in 0..n {
        let v = NewVersion { dataset_hash: format!("d{i}"), ..new_version("race", 0.6) };
        reg.register(&P, &v, files("r"), "ana").await.unwrap();
    }
    for round in 0..3 {
        // Separate pools, as separate processes would have, all promoting at once.
        let mut handles = Vec::new();
        for i in 0..n {
            let other = t.reopen().await;
            handles.push(tokio::spawn(async move {
                let reference = VersionRef::parse(&format!("race@1.0.{i}")).unwrap();
                let result = other.promote(&Scope::Platform, &reference, Stage::Production, None, "racer").await;
                other.close().await;
                result
            }));
        }
        let mut succeeded = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => succeeded += 1,
                Err(RegistryError::InvalidTransition { .. }) => {} // it was production already (a later round)
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert!(succeeded >= n - 1, "round {round}: {succeeded} promotions succeeded");
        let production = reg
            .versions(
                &P,
                &VersionFilter { name: Some("race".into()), stage: Some(Stage::Production), ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(production.len(), 1, "round {round} on {}: {production:?}", t.label());
    }

    // The database itself refuses a second production version, whoever writes.
    let pool = sqlx::AnyPool::connect(&t.url).await.unwrap();
    let err = sqlx::query("UPDATE model_versions SET stage = 'production' WHERE stage <> 'production'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(matches!(&err, sqlx::Error::Database(d) if d.is_unique_violation()), "{err}");
    pool.close().await;
}
on_both_backends!(concurrency, concurrent_promotions_leave_one_production);

async fn scopes_never_see_each_other(t: &TestRegistry) {
    let reg = &t.registry;
    let acme = Scope::parse("acme").unwrap();
    let globex = Scope::parse("globex").unwrap();
    let bob = Scope::parse("acme/bob").unwrap();
    reg.register(&acme, &new_version("shared_name", 0.6), files("acme"), "a").await.unwrap();
    reg.register(&globex, &new_version("shared_name", 0.7), files("globex"), "g").await.unwrap();
    reg.register(&globex, &new_version("shared_name", 0.7), files("globex"), "g").await.unwrap();
    reg.register(&bob, &new_version("private", 0.5), files("bob"), "b").await.unwrap();

    let listed = reg.versions(&acme, &VersionFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].metrics["oos_auc"], 0.6);
    assert_eq!(reg.versions(&globex, &VersionFilter::default()).await.unwrap().len(), 2);
    assert!(reg.versions(&P, &VersionFilter::default()).await.unwrap().is_empty());
    assert!(matches!(reg.version(&acme, &r("private")).await, Err(RegistryError::NotFound(_))));
    assert!(matches!(reg.version(&acme, &r("shared_name@1.0.1")).await, Err(RegistryError::NotFound(_))));

    reg.promote(&acme, &r("shared_name@1.0.0"), Stage::Production, None, "a").await.unwrap();
    reg.promote(&globex, &r("shared_name@1.0.1"), Stage::Production, None, "g").await.unwrap();
    assert_eq!(reg.version(&acme, &r("shared_name@production")).await.unwrap().version.to_string(), "1.0.0");
    assert!(reg.promote(&globex, &r("private@1.0.0"), Stage::Staging, None, "g").await.is_err());
    assert_eq!(reg.audit_log(&acme, None, 100).await.unwrap().len(), 2);
    assert_eq!(reg.audit_log(&globex, None, 100).await.unwrap().len(), 3);

    let a_dir = reg.artifacts().local_dir(&listed[0].artifact_uri).unwrap();
    assert!(a_dir.ends_with("t/acme/shared_name/1.0.0"), "{}", a_dir.display());
}
on_both_backends!(scopes, scopes_never_see_each_other);

async fn ranking_keeps_the_best(t: &TestRegistry) {
    let reg = &t.registry;
    for (i, auc) in [0.55, 0.60, 0.52, 0.58, 0.51].into_iter().enumerate() {
        let v = NewVersion { dataset_hash: format!("d{i}"), ..new_version("ranked", auc) };
        reg.register(&P, &v, files("x"), "ana").await.unwrap();
    }
    // The weakest is production: ranking never archives it.
    reg.promote(&P, &r("ranked@1.0.4"), Stage::Production, None, "ana").await.unwrap();
    let outcome = reg.rank(&P, "ranked", "oos_auc", 2, RankOrder::HigherIsBetter, "ana").await.unwrap();
    let kept: Vec<&str> = outcome.kept.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(kept, ["ranked@1.0.1", "ranked@1.0.3", "ranked@1.0.4"]);
    let archived: Vec<&str> = outcome.archived.iter().map(|c| c.version.as_str()).collect();
    assert_eq!(archived, ["ranked@1.0.0", "ranked@1.0.2"]);
    assert_eq!(reg.version(&P, &r("ranked@1.0.2")).await.unwrap().stage, Stage::Archived);
    let err = reg.rank(&P, "ranked", "sharpe", 2, RankOrder::HigherIsBetter, "ana").await.unwrap_err().to_string();
    assert!(err.contains("sharpe") && err.contains("oos_auc"), "{err}");
}
on_both_backends!(ranking, ranking_keeps_the_best);

async fn runs_are_recorded(t: &TestRegistry) {
    let reg = &t.registry;
    let config = serde_json::json!({"model": {"kind": "lightgbm"}});
    let run =
        reg.start_run(&P, "fil-direction", &config, &serde_json::json!({"seed": 7}), "qp 0.1", "ana").await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(!run.host.is_empty());
    let done = reg.finish_run(&P, run.id, Ok(()), 12.5).await.unwrap();
    assert_eq!((done.status, done.compute_seconds), (RunStatus::Succeeded, Some(12.5)));
    assert!(done.ended_at.unwrap() >= done.started_at);
    let err = reg.finish_run(&P, run.id, Err("again".into()), 1.0).await.unwrap_err().to_string();
    assert!(err.contains("already ended"), "{err}");
    let failing = reg.start_run(&P, "fil-direction", &config, &serde_json::json!({}), "qp 0.1", "ana").await.unwrap();
    reg.finish_run(&P, failing.id, Err("labels: only 12 rows".into()), 0.3).await.unwrap();
    reg.start_run(&P, "other", &config, &serde_json::json!({}), "qp 0.1", "ana").await.unwrap();

    let failed = reg.runs(&P, &RunFilter { status: Some(RunStatus::Failed), ..Default::default() }).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.as_deref(), Some("labels: only 12 rows"));
    let in_experiment =
        reg.runs(&P, &RunFilter { experiment: Some("fil-direction".into()), ..Default::default() }).await.unwrap();
    assert_eq!(in_experiment.len(), 2);
    assert_eq!(reg.run(&P, run.id).await.unwrap().config, config);
    let tenant = Scope::parse("acme").unwrap();
    assert!(matches!(reg.run(&tenant, run.id).await, Err(RegistryError::NotFound(_))));
    assert!(reg.runs(&tenant, &RunFilter::default()).await.unwrap().is_empty());

    // A version records the run that trained it.
    let v = NewVersion { run_id: Some(run.id), ..new_version("from_run", 0.6) };
    assert_eq!(reg.register(&P, &v, files("r"), "ana").await.unwrap().run_id, Some(run.id));
}

async fn filters_runs_deployments_and_alerts(t: &TestRegistry) {
    listing_filters_and_pages(t).await;
    runs_are_recorded(t).await;
    let reg = &t.registry;
    reg.register(&P, &new_version("served", 0.6), files("s1"), "ana").await.unwrap();
    let v2 = NewVersion { dataset_hash: "d2".into(), ..new_version("served", 0.61) };
    reg.register(&P, &v2, files("s2"), "ana").await.unwrap();
    reg.deploy(&P, "direction", &r("served@1.0.0"), Route::Champion, 1.0, "ops").await.unwrap();
    reg.deploy(&P, "direction", &r("served@1.0.1"), Route::Canary, 0.1, "ops").await.unwrap();
    reg.deploy(&P, "direction", &r("served@1.0.1"), Route::Champion, 1.0, "ops").await.unwrap();
    let live = reg.deployments(&P, Some("direction")).await.unwrap();
    let summary: Vec<(String, Route)> = live.iter().map(|d| (d.version.clone(), d.route)).collect();
    assert_eq!(summary, [("served@1.0.1".to_string(), Route::Canary), ("served@1.0.1".to_string(), Route::Champion)]);
    assert!(reg.deploy(&P, "direction", &r("served@1.0.1"), Route::Canary, 1.5, "ops").await.is_err());
    assert_eq!(
        reg.audit_log(&P, Some("served"), 100).await.unwrap().iter().filter(|e| e.action == "deploy").count(),
        3
    );

    let alert = reg.raise_alert(&P, "load_failed", Severity::Critical, "model.txt: truncated", None).await.unwrap();
    let open = reg.alerts(&P, true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].id, open[0].severity.as_str()), (alert.id, "critical"));
    assert!(reg.alerts(&Scope::parse("acme").unwrap(), false, 10).await.unwrap().is_empty());
}
on_both_backends!(operations, filters_runs_deployments_and_alerts);

async fn listing_filters_and_pages(t: &TestRegistry) {
    let reg = &t.registry;
    assert!(matches!(
        reg.register(&P, &new_version("fil%dir", 0.5), files("x"), "ana").await,
        Err(RegistryError::InvalidName(_))
    ));
    for name in ["btc_dir", "btc_vol", "eth_dir"] {
        reg.register(&P, &new_version(name, 0.5), files(name), "ana").await.unwrap();
    }
    let all = reg.versions(&P, &VersionFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let dir =
        reg.versions(&P, &VersionFilter { name_contains: Some("_dir".into()), ..Default::default() }).await.unwrap();
    let names: Vec<&str> = dir.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["eth_dir", "btc_dir"]);
    // `_` is literal in a name search, not a LIKE wildcard.
    let none =
        reg.versions(&P, &VersionFilter { name_contains: Some("bt_".into()), ..Default::default() }).await.unwrap();
    assert!(none.is_empty());
    let page1 = reg.versions(&P, &VersionFilter { limit: Some(2), ..Default::default() }).await.unwrap();
    let page2 = reg
        .versions(&P, &VersionFilter { limit: Some(2), before_id: Some(page1[1].id), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 3);
    assert_eq!(page2[0].name, "btc_dir");
}

async fn opening_twice_at_once_migrates_once(t: &TestRegistry) {
    let (a, b) = tokio::join!(t.reopen(), t.reopen());
    a.register(&P, &new_version("m", 0.5), files("m"), "ana").await.unwrap();
    assert_eq!(b.versions(&P, &VersionFilter::default()).await.unwrap().len(), 1);
    a.close().await;
    b.close().await;
}
on_both_backends!(migrations, opening_twice_at_once_migrates_once);

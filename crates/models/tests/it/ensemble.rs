//! Ensembles on FILUSDT features: averages and votes equal the members' predictions combined by
//! hand; stacking's meta-model is exactly the one fitted on purged out-of-fold predictions; an
//! ensemble saves and loads as one artifact.

use crate::common::data;
use quantpipe_models::ensemble::{EnsembleModel, EnsembleParams};
use quantpipe_models::{fit, load, Dataset, Model, ModelSpec};

const ROWS: usize = 4_000;

fn spec(text: &str) -> ModelSpec {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const GBDT: &str = "kind = \"lightgbm\"\nobjective = \"binary\"\nnum_iterations = 20\nnum_leaves = 7\nmin_data_in_leaf = 50\nseed = 1\nnum_threads = 1\n";
const LOGISTIC: &str = "kind = \"logistic\"\nc = 0.1\n";

fn ensemble(text: &str) -> EnsembleParams {
    match spec(text) {
        ModelSpec::Ensemble(p) => p,
        other => panic!("{other:?}"),
    }
}

/// Rows past the warm-up, NaN-free for the logistic member's sake (it imputes anyway).
fn rows() -> (Vec<f64>, Vec<f64>, Vec<i64>, Vec<i64>) {
    let data = data();
    let d = data.names.len();
    let r = 1_000..1_000 + ROWS;
    (
        data.x[r.start * d..r.end * d].to_vec(),
        data.direction[r.clone()].to_vec(),
        data.start[r.clone()].to_vec(),
        data.end[r].to_vec(),
    )
}

fn members_text(method: &str, extra: &str) -> String {
    format!("kind = \"ensemble\"\nmethod = \"{method}\"\n{extra}\n[[members]]\n{GBDT}\n[[members]]\n{LOGISTIC}")
}

#[test]
fn averages_and_votes_combine_the_members_predictions() {
    let (x, y, start, end) = rows();
    let names = &data().names;
    let dataset =
        Dataset { features: &x, feature_names: names, labels: &y, weights: None, label_windows: Some((&start, &end)) };
    let gbdt = fit(&spec(GBDT), None, &dataset).unwrap().predict(&x).unwrap();
    let logistic = fit(&spec(LOGISTIC), None, &dataset).unwrap().predict(&x).unwrap();

    let average =
        fit(&ModelSpec::Ensemble(ensemble(&members_text("average", "weights = [3.0, 1.0]"))), None, &dataset).unwrap();
    let got = average.predict(&x).unwrap();
    for ((g, a), b) in got.iter().zip(&gbdt).zip(&logistic) {
        assert!((g - (0.75 * a + 0.25 * b)).abs() < 1e-15, "{g} vs {a}, {b}");
    }

    let vote = fit(&ModelSpec::Ensemble(ensemble(&members_text("vote", "weights = [2.0, 1.0]"))), None, &dataset)
        .unwrap()
        .predict(&x)
        .unwrap();
    for ((v, a), b) in vote.iter().zip(&gbdt).zip(&logistic) {
        let want = 2.0 / 3.0 * f64::from(u8::from(*a > 0.5)) + 1.0 / 3.0 * f64::from(u8::from(*b > 0.5));
        assert!((v - want).abs() < 1e-15, "{v} vs {want}");
    }
    // The two members disagree somewhere, or the test would prove little.
    assert!(gbdt.iter().zip(&logistic).any(|(a, b)| (*a > 0.5) != (*b > 0.5)));
}

#[test]
fn stacking_fits_its_meta_model_on_purged_out_of_fold_predictions_only() {
    let (x, y, start, end) = rows();
    let names = &data().names;
    let d = names.len();
    let dataset =
        Dataset { features: &x, feature_names: names, labels: &y, weights: None, label_windows: Some((&start, &end)) };
    let params = ensemble(&members_text("stacking", "stacking_folds = 4"));
    let stacked = EnsembleModel::fit(&dataset, &params).unwrap();

    // The same out-of-fold predictions by hand: four time blocks, each predicted by members fitted on
    // the rows whose label windows do not overlap the block's.
    let n = ROWS;
    let mut oof = vec![0.0; n * 2];
    let mut purged = 0;
    for f in 0..4 {
        let (lo, hi) = (f * n / 4, (f + 1) * n / 4);
        let (bs, be) = (*start[lo..hi].iter().min().unwrap(), *end[lo..hi].iter().max().unwrap());
        let train: Vec<usize> = (0..n).filter(|&i| (i < lo || i >= hi) && (end[i] < bs || start[i] > be)).collect();
        purged += n - (hi - lo) - train.len();
        let tx: Vec<f64> = train.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
        let ty: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let ts: Vec<i64> = train.iter().map(|&i| start[i]).collect();
        let te: Vec<i64> = train.iter().map(|&i| end[i]).collect();
        let part = Dataset { features: &tx, labels: &ty, label_windows: Some((&ts, &te)), ..dataset };
        for (m, text) in [GBDT, LOGISTIC].iter().enumerate() {
            let p = fit(&spec(text), None, &part).unwrap().predict(&x[lo * d..hi * d]).unwrap();
            for (r, v) in p.iter().enumerate() {
                oof[(lo + r) * 2 + m] = *v;
            }
        }
    }
    // Label windows of 60 bars: each inner block boundary purges about 60 rows on each side.
    assert!(purged > 200, "{purged} rows purged");
    assert_eq!(stacked.meta().training["stacking_purged_rows"], purged);
    let meta_names = vec!["member_0".to_string(), "member_1".to_string()];
    let meta_data = Dataset { features: &oof, feature_names: &meta_names, ..dataset };
    let by_hand = fit(&ModelSpec::Logistic(Default::default()), None, &meta_data).unwrap();
    let probe: Vec<f64> = (0..50).flat_map(|k| [k as f64 / 50.0, 1.0 - k as f64 / 70.0]).collect();
    assert_eq!(stacked.meta_model().unwrap().predict(&probe).unwrap(), by_hand.predict(&probe).unwrap());

    // Prediction: the meta-model over the refitted members' outputs.
    let gbdt = fit(&spec(GBDT), None, &dataset).unwrap().predict(&x).unwrap();
    let logistic = fit(&spec(LOGISTIC), None, &dataset).unwrap().predict(&x).unwrap();
    let inputs: Vec<f64> = gbdt.iter().zip(&logistic).flat_map(|(a, b)| [*a, *b]).collect();
    assert_eq!(stacked.predict(&x).unwrap(), by_hand.predict(&inputs).unwrap());
}

#[test]
fn an_ensemble_is_one_artifact_that_reloads_bit_for_bit() {
    let (x, y, start, end) = rows();
    let names = &data().names;
    let dataset =
        Dataset { features: &x, feature_names: names, labels: &y, weights: None, label_windows: Some((&start, &end)) };
    for method in ["average", "stacking"] {
        let model = fit(&ModelSpec::Ensemble(ensemble(&members_text(method, ""))), None, &dataset).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let files: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(files.iter().all(|f| f == "model.json" || f == "ensemble.json"), "{files:?}");
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.family(), "ensemble");
        assert_eq!(loaded.predict(&x).unwrap(), model.predict(&x).unwrap(), "{method}");
        assert_eq!(loaded.feature_importance().unwrap().len(), names.len());
    }
}

#[test]
fn bad_ensembles_are_refused_naming_the_member() {
    let err = |text: &str| match toml::from_str::<ModelSpec>(text) {
        Err(e) => e.to_string(),
        Ok(spec) => spec.task().unwrap_err().to_string(),
    };
    assert!(err(&format!("kind = \"ensemble\"\nmethod = \"average\"\n[[members]]\n{GBDT}")).contains("at least two"));
    assert!(err(&members_text("average", "weights = [1.0]")).contains("1 weights for 2 members"));
    assert!(err(&members_text("average", "weights = [-1.0, 2.0]")).contains("non-negative"));
    assert!(err(&members_text("stacking", "weights = [1.0, 1.0]")).contains("remove weights"));
    assert!(err(&members_text("stacking", "stacking_folds = 1")).contains("stacking_folds"));
    let mixed =
        format!("kind = \"ensemble\"\nmethod = \"average\"\n[[members]]\n{GBDT}\n[[members]]\nkind = \"linear\"\n");
    assert!(err(&mixed).contains("members[1] predicts Regression"));
    let regressors = "kind = \"ensemble\"\nmethod = \"vote\"\n[[members]]\nkind = \"linear\"\n[[members]]\nkind = \"linear\"\nalpha = 0.1\n";
    assert!(err(regressors).contains("needs classifiers"));
    assert!(err(&members_text("average", "").replace("num_leaves", "num_leafs")).contains("num_leafs"));
    let nested = format!(
        "{}\n[[members]]\nkind = \"ensemble\"\nmethod = \"average\"\nmembers = []\n",
        members_text("average", "")
    );
    assert!(err(&nested).contains("members[2]: ensembles do not nest"));
}

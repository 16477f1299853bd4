//! The evaluation harness on the default model: MzsRE records in two languages, unedited vs ours, in
//! this process and spread over worker processes.

mod common;

use std::sync::atomic::AtomicBool;

use lafn::eval::{run, Dataset, EvalMethod, EvalModels, EvalReport, EvalRequest, Metric, Scoring};

/// The first `limit` sample records in English and German, unedited and ours, both scorings.
fn request(limit: usize) -> EvalRequest {
    EvalRequest {
        dataset: Dataset::Mzsre,
        file: common::mzsre_sample(),
        langs: Some(vec!["en".into(), "de".into()]),
        limit: Some(limit),
        methods: vec![EvalMethod::Unedited, EvalMethod::LuLafns],
        sequential: false,
        config: Default::default(),
        state_file: None,
        scoring: Scoring::Both,
        shard: None,
        unedited_answers: None,
    }
}

#[test]
fn lu_lafns_raises_reliability_and_keeps_locality() {
    let request = request(1);
    let models = EvalModels { loaded: common::default_quantized(), dense: common::default_editing() };
    let report = run(models, &request, &AtomicBool::new(false), &mut |_| {}).unwrap();
    eprintln!("{}", report.markdown());
    let (unedited, ours) = (&report.methods[0], &report.methods[1]);
    assert_eq!((unedited.method, ours.method), (EvalMethod::Unedited, EvalMethod::LuLafns));
    let tables = [
        ("teacher forced", &unedited.teacher_forced, &ours.teacher_forced),
        ("generated", &unedited.generated, &ours.generated),
    ];
    for (scoring, before, after) in tables {
        let reliability = |t: &lafn::eval::Table| t.average[&Metric::Reliability].em;
        assert!(
            reliability(after) > reliability(before),
            "{scoring}: reliability EM {} -> {}",
            reliability(before),
            reliability(after)
        );
        let locality = after.average[&Metric::Locality].f1;
        assert!(locality >= 90.0, "{scoring}: locality F1 {locality}");
    }
    assert!(report.git_commit.len() >= 7);
}

/// `lafn eval --jobs 2` (two worker processes, each pinned to a CPU of its own where there are two)
/// gives the report of one run in the test's own process.
#[test]
fn a_run_spread_over_worker_processes_gives_the_report_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let request = request(2);
    let models = EvalModels { loaded: common::default_quantized(), dense: common::default_editing() };
    let whole = run(models, &request, &AtomicBool::new(false), &mut |_| {}).unwrap();

    let out = dir.path().join("spread.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(["eval", "--dataset", "mzsre", "--langs", "en,de", "--limit", "2", "--method", "unedited,lu-lafns"])
        .args(["--jobs", "2", "--recompute-unedited"])
        .arg("--file")
        .arg(&request.file)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let spread: EvalReport = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(spread.records_this_run, 2);
    for (one, other) in whole.methods.iter().zip(&spread.methods) {
        assert_eq!(one.method, other.method);
        assert_eq!(one.teacher_forced, other.teacher_forced, "{}", one.method);
        assert_eq!(one.generated, other.generated, "{}", one.method);
    }
}

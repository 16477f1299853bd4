//! The evaluation harness on the default model: one MzsRE record in two languages, unedited vs ours.

mod common;

use std::sync::atomic::AtomicBool;

use lafn::eval::{run, Dataset, EvalMethod, EvalModels, EvalRequest, Metric};

#[test]
fn lu_lafns_raises_reliability_and_keeps_locality() {
    let request = EvalRequest {
        dataset: Dataset::Mzsre,
        file: format!("{}/../shared/data/mzsre.dev.jsonl", env!("CARGO_MANIFEST_DIR")).into(),
        langs: Some(vec!["en".into(), "de".into()]),
        limit: Some(1),
        methods: vec![EvalMethod::Unedited, EvalMethod::LuLafns],
        sequential: false,
        config: Default::default(),
        state_file: None,
    };
    let models = EvalModels { loaded: common::default_quantized(), dense: common::default_dense() };
    let report = run(models, &request, &AtomicBool::new(false), &mut |_| {}).unwrap();
    eprintln!("{}", report.markdown());
    let (unedited, ours) = (&report.methods[0], &report.methods[1]);
    assert_eq!((unedited.method, ours.method), (EvalMethod::Unedited, EvalMethod::LuLafns));
    let reliability = |m: &lafn::eval::MethodReport| m.average[&Metric::Reliability].em;
    assert!(
        reliability(ours) > reliability(unedited),
        "reliability EM {} -> {}",
        reliability(unedited),
        reliability(ours)
    );
    assert!(ours.average[&Metric::Locality].f1 >= 90.0, "locality F1 {}", ours.average[&Metric::Locality].f1);
    assert!(report.git_commit.len() >= 7);
}

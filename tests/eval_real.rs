//! The evaluation harness on the default model: one MzsRE record in two languages, unedited vs ours.

mod common;

use std::sync::atomic::AtomicBool;

use lafn::eval::{run, Dataset, EvalMethod, EvalModels, EvalRequest, Metric, Scoring};

#[test]
fn lu_lafns_raises_reliability_and_keeps_locality() {
    let request = EvalRequest {
        dataset: Dataset::Mzsre,
        file: common::mzsre_sample(),
        langs: Some(vec!["en".into(), "de".into()]),
        limit: Some(1),
        methods: vec![EvalMethod::Unedited, EvalMethod::LuLafns],
        sequential: false,
        config: Default::default(),
        state_file: None,
        scoring: Scoring::Both,
        shard: None,
        unedited_answers: None,
    };
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

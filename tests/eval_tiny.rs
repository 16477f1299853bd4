//! The evaluation harness on a tiny random model: every method runs in both protocols, results are
//! kept per (method, record) and a rerun resumes from them, but never with other settings.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use clap::ValueEnum;
use lafn::eval::methods::{answer_all, Answerer};
use lafn::eval::{
    edit_spread, merge, run, run_spread, serve, state_path_for, Dataset, EvalConfig, EvalMethod, EvalModels,
    EvalReport, EvalRequest, Metric, Progress, Scoring, Shard, Table,
};
use lafn::method::apply::CachedEdits;
use lafn::method::cache::MemoryStore;
use lafn::method::prompts::ParaphraseSettings;
use lafn::method::{LayerChoice, LocateSettings, MethodSettings, OptimizeSettings};
use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::{Arch, LoadedModel, Model, PromptFrame, WeightMode};
use lafn::workers::WorkerLink;

/// Two records in the benchmark format, in words the tiny tokenizer knows.
const RECORDS: &str = r#"{"en": {"subject": "Shmavon Shmavonyan", "src": "what country is Shmavon Shmavonyan from ?", "rephrase": "which country is Shmavon Shmavonyan from ?", "alt": "Yemen", "loc": "where is the river ?", "loc_ans": "Italy", "portability": {"New Question": "what is the capital of the country of Shmavon Shmavonyan ?", "New Answer": "Tokyo"}}, "de": {"subject": "Shmavon Shmavonyan", "src": "Shmavon Shmavonyan ist der", "rephrase": "der Shmavon Shmavonyan ist", "alt": "Jemen", "loc": "die river ist", "loc_ans": "Berlin", "portability": {"New Question": "die capital der Shmavon Shmavonyan ist", "New Answer": "Tokyo"}}}
{"en": {"subject": "Danielle Darrieux", "src": "which language speaks Danielle Darrieux ?", "rephrase": "what language is Danielle Darrieux ?", "alt": "Japan", "loc": "who works for the company ?", "loc_ans": "Bob", "portability": {"New Question": "", "New Answer": ""}}, "de": {"subject": "Danielle Darrieux", "src": "Danielle Darrieux ist die", "rephrase": "die Danielle Darrieux ist", "alt": "Japan", "loc": "der company und", "loc_ans": "Alice", "portability": {"New Question": "", "New Answer": ""}}}
"#;

struct Tiny {
    _dir: tempfile::TempDir,
    data: PathBuf,
    loaded: LoadedModel,
    dense: Model,
}

fn tiny() -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(&dir.path().join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    let dense = loaded.editing_weights().unwrap();
    let data = dir.path().join("records.jsonl");
    std::fs::write(&data, RECORDS).unwrap();
    Tiny { _dir: dir, data, loaded, dense }
}

fn config(steps: usize) -> EvalConfig {
    EvalConfig {
        method: MethodSettings {
            paraphrases: ParaphraseSettings { count: 2, ..Default::default() },
            locate: LocateSettings {
                beta: 0.5,
                layers: LayerChoice::Fixed(vec![1, 2]),
                generic_share: None,
                max_per_layer: Some(16),
                ..Default::default()
            },
            edit: OptimizeSettings { steps, learning_rate: Some(0.1), ..Default::default() },
            ..Default::default()
        },
        eval: Default::default(),
    }
}

fn request(tiny: &Tiny, methods: &[EvalMethod], state: Option<&Path>) -> EvalRequest {
    EvalRequest {
        dataset: Dataset::Mzsre,
        file: tiny.data.clone(),
        langs: Some(vec!["en".into(), "de".into()]),
        limit: None,
        methods: methods.to_vec(),
        sequential: false,
        config: config(4),
        state_file: state.map(Path::to_path_buf),
        scoring: Scoring::Both,
        shard: None,
        unedited_answers: None,
    }
}

fn evaluate(tiny: &Tiny, request: &EvalRequest) -> lafn::Result<(EvalReport, Vec<Progress>)> {
    let mut progress = Vec::new();
    let models = EvalModels { loaded: &tiny.loaded, dense: &tiny.dense };
    let report = run(models, request, &AtomicBool::new(false), &mut |p| progress.push(p))?;
    Ok((report, progress))
}

fn state_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn every_method_runs_and_a_rerun_resumes_from_the_state_file() {
    let tiny = tiny();
    let out = tiny._dir.path().join("report.json");
    let state = state_path_for(&out);
    assert_eq!(state.file_name().unwrap(), "report.state.jsonl");
    let first_methods = [EvalMethod::Unedited, EvalMethod::LuLafns];
    let (first, _) = evaluate(&tiny, &request(&tiny, &first_methods, Some(&state))).unwrap();
    assert_eq!((first.records, first.records_this_run), (2, 2));
    assert_eq!(state_lines(&state), 1 + 4, "a header and one line per (method, record)");
    let unedited = &first.methods[0];
    assert_eq!(unedited.method, EvalMethod::Unedited);
    for table in [&unedited.teacher_forced, &unedited.generated] {
        for metric in [Metric::Locality, Metric::Specificity] {
            assert_eq!(table.average[&metric].em, 100.0, "{metric:?}: the unedited model agrees with itself");
        }
        // Portability exists only in the first record: both languages still have a score.
        assert!(table.per_lang["en"].contains_key(&Metric::Portability));
    }
    assert!(unedited.generated.average.contains_key(&Metric::SpecificityNewTarget));
    assert!(!unedited.teacher_forced.average.contains_key(&Metric::SpecificityNewTarget), "generated answers only");
    assert!(unedited.in_script["avg"] > 0.0);
    let ours = &first.methods[1];
    assert!(ours.seconds.locate > 0.0 && ours.seconds.optimize > 0.0 && ours.seconds.scoring > 0.0);
    assert_eq!(ours.retrieval_fired[&Metric::Reliability], 100.0, "the edit prompts name the subject");
    assert_eq!(ours.retrieval_fired[&Metric::Locality], 0.0);
    assert_eq!(ours.teacher_forced.average[&Metric::Locality].em, 100.0, "nothing fires on unrelated questions");
    assert_eq!(ours.generated.average[&Metric::Locality].em, 100.0, "nothing fires on unrelated questions");

    // The same run again computes nothing and reports the same results.
    let (again, progress) = evaluate(&tiny, &request(&tiny, &first_methods, Some(&state))).unwrap();
    assert_eq!(again.records_this_run, 0);
    assert_eq!(again.methods, first.methods);
    assert_eq!(progress[0].resumed, 2);
    assert!(progress.iter().all(|p| p.stage.is_none()), "nothing was edited or scored");
    assert_eq!(state_lines(&state), 5);

    // More methods: only theirs are computed; the earlier results stay as they were.
    let (all, _) = evaluate(&tiny, &request(&tiny, EvalMethod::value_variants(), Some(&state))).unwrap();
    assert_eq!(all.records_this_run, 2);
    assert_eq!(state_lines(&state), 1 + 12);
    assert_eq!(all.methods.iter().map(|m| m.method).collect::<Vec<_>>(), EvalMethod::value_variants());
    assert_eq!(all.methods[..2], first.methods[..]);
    for m in &all.methods {
        assert_eq!(m.records, 2, "{}", m.method);
        assert_eq!(m.teacher_forced.per_lang.len(), 2, "{}", m.method);
        assert_eq!(m.generated.per_lang.len(), 2, "{}", m.method);
    }
    let report = |method| all.methods.iter().find(|m| m.method == method).unwrap();
    assert!(report(EvalMethod::FtL).seconds.optimize > 0.0 && report(EvalMethod::RandomNeurons).seconds.optimize > 0.0);
    assert!(report(EvalMethod::Icl).retrieval_fired[&Metric::Generality] == 100.0);
    let markdown = all.markdown();
    for needle in [
        "### Reliability, teacher forced (F1 / EM)",
        "### Specificity, generated (F1 / EM)",
        "| lu-lafns-nocache |",
        "records/min",
    ] {
        assert!(markdown.contains(needle), "{needle} missing from\n{markdown}");
    }

    // A crash mid-write leaves half a line: it is dropped and that one result computed again.
    let text = std::fs::read_to_string(&state).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 20;
    std::fs::write(&state, &text[..cut]).unwrap();
    let (resumed, _) = evaluate(&tiny, &request(&tiny, EvalMethod::value_variants(), Some(&state))).unwrap();
    assert_eq!(resumed.records_this_run, 1);
    assert_eq!(state_lines(&state), 1 + 12);

    // Other settings or languages must not mix with these results.
    let mut other = request(&tiny, &first_methods, Some(&state));
    other.config = config(5);
    let error = format!("{:#}", evaluate(&tiny, &other).unwrap_err());
    assert!(error.contains("different settings"), "{error}");
    let mut other = request(&tiny, &first_methods, Some(&state));
    other.scoring = Scoring::Generate;
    let error = format!("{:#}", evaluate(&tiny, &other).unwrap_err());
    assert!(error.contains("different --scoring"), "{error}");
    let mut other = request(&tiny, &first_methods, Some(&state));
    other.langs = Some(vec!["en".into()]);
    let error = format!("{:#}", evaluate(&tiny, &other).unwrap_err());
    assert!(error.contains("different languages"), "{error}");
}

/// Runs `request` with its state file beside `out` and writes the report there, as `lafn eval --out` does.
fn evaluate_to(tiny: &Tiny, mut request: EvalRequest, out: &Path) -> EvalReport {
    request.state_file = Some(state_path_for(out));
    let (report, _) = evaluate(tiny, &request).unwrap();
    lafn::storage::write_json_atomic(out, &report).unwrap();
    report
}

#[test]
fn shards_merged_give_the_report_of_one_run() {
    let tiny = tiny();
    let dir = tiny._dir.path();
    let methods = [EvalMethod::Unedited, EvalMethod::LuLafns, EvalMethod::RandomNeurons];
    let whole = evaluate_to(&tiny, request(&tiny, &methods, None), &dir.join("whole.json"));
    let mut parts = Vec::new();
    for shard in ["1/2", "2/2"] {
        let mut part = request(&tiny, &methods, None);
        part.shard = Some(shard.parse::<Shard>().unwrap());
        let out = dir.join(format!("part{}.json", &shard[..1]));
        let report = evaluate_to(&tiny, part, &out);
        assert_eq!((report.records_this_run, report.shard.map(|s| s.to_string())), (1, Some(shard.into())));
        assert!(report.markdown().contains(&format!("shard {shard} of 2 records")));
        parts.push(out);
    }
    let merged = merge(&parts).unwrap();
    assert!(merged.missing.is_empty());
    assert_eq!((merged.report.records, merged.report.shard, merged.results.len()), (2, None, 6));
    assert_eq!(merged.report.methods.len(), whole.methods.len());
    for (joined, one) in merged.report.methods.iter().zip(&whole.methods) {
        assert_eq!(joined.method, one.method);
        assert_eq!(joined.records, one.records);
        assert_eq!(joined.teacher_forced, one.teacher_forced, "{}", one.method);
        assert_eq!(joined.generated, one.generated, "{}", one.method);
        assert_eq!(joined.in_script, one.in_script);
        assert_eq!(joined.retrieval_fired, one.retrieval_fired);
    }

    // One part alone: the other record's results are reported missing; other settings are refused.
    let alone = merge(&parts[..1]).unwrap();
    assert_eq!(alone.missing, methods.iter().map(|&m| (m, 1)).collect::<Vec<_>>());
    let mut other = request(&tiny, &methods[..1], None);
    other.config = config(5);
    evaluate_to(&tiny, other, &dir.join("other.json"));
    let error = format!("{:#}", merge(&[parts[0].clone(), dir.join("other.json")]).err().unwrap());
    assert!(error.contains("different settings"), "{error}");
    let mut sequential = request(&tiny, &methods[..1], None);
    (sequential.sequential, sequential.shard) = (true, Some("1/2".parse().unwrap()));
    assert!(format!("{:#}", evaluate(&tiny, &sequential).unwrap_err()).contains("cannot be split"));
}

/// Starts workers for `coordinate` (given the function that starts one), each a thread serving
/// through pipes as `lafn eval --jobs`'s worker processes do; returns its outcome and how many
/// workers were started.
fn with_thread_workers<T>(
    tiny: &Tiny,
    request: &EvalRequest,
    coordinate: impl FnOnce(&mut dyn FnMut(usize) -> lafn::Result<WorkerLink>) -> lafn::Result<T>,
) -> lafn::Result<(T, usize)> {
    let models = EvalModels { loaded: &tiny.loaded, dense: &tiny.dense };
    let never = AtomicBool::new(false);
    let mut started = 0;
    std::thread::scope(|scope| {
        let mut start = |_| -> lafn::Result<WorkerLink> {
            started += 1;
            let (assignments, to_worker) = std::io::pipe()?;
            let (from_worker, messages) = std::io::pipe()?;
            let (request, never) = (request.clone(), &never);
            scope.spawn(move || serve(models, &request, std::io::BufReader::new(assignments), messages, never));
            Ok(WorkerLink { input: Box::new(to_worker), output: Box::new(std::io::BufReader::new(from_worker)) })
        };
        let outcome = coordinate(&mut start);
        outcome.map(|outcome| (outcome, started))
    })
}

/// Runs `request` spread over `jobs` thread workers; returns the report and how many were started.
fn evaluate_spread(tiny: &Tiny, request: &EvalRequest, jobs: usize) -> lafn::Result<(EvalReport, usize)> {
    let never = AtomicBool::new(false);
    with_thread_workers(tiny, request, |start| run_spread(&tiny.loaded, request, jobs, start, &never, &mut |_| {}))
}

#[test]
fn a_run_spread_over_workers_gives_the_report_of_one_run_and_resumes() {
    let tiny = tiny();
    let methods = [EvalMethod::Unedited, EvalMethod::LuLafns, EvalMethod::RandomNeurons];
    let (whole, _) = evaluate(&tiny, &request(&tiny, &methods, None)).unwrap();
    let state = tiny._dir.path().join("spread.state.jsonl");
    let (spread, workers) = evaluate_spread(&tiny, &request(&tiny, &methods, Some(&state)), 3).unwrap();
    assert_eq!((workers, spread.records_this_run), (2, 2), "a worker per record left, no more");
    assert_eq!(outcomes(&spread), outcomes(&whole));
    assert_eq!(state_lines(&state), 1 + 6, "the coordinator keeps every (method, record) result");

    let (resumed, workers) = evaluate_spread(&tiny, &request(&tiny, &methods, Some(&state)), 3).unwrap();
    assert_eq!((workers, resumed.records_this_run), (0, 0), "nothing left to do: no worker started");
    assert_eq!(outcomes(&resumed), outcomes(&whole));

    // A worker that dies names itself and its record; the results finished before stay.
    let mut dead = |_| -> lafn::Result<WorkerLink> {
        Ok(WorkerLink { input: Box::new(std::io::sink()), output: Box::new(std::io::empty()) })
    };
    let state = tiny._dir.path().join("dead.state.jsonl");
    let error = run_spread(
        &tiny.loaded,
        &request(&tiny, &methods, Some(&state)),
        1,
        &mut dead,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(format!("{error:#}").contains("worker 1 failed on record 1: its output ended"), "{error:#}");
}

#[test]
fn sequential_protocol_scores_every_record_with_all_edits_in_place() {
    let tiny = tiny();
    let mut request = request(&tiny, EvalMethod::value_variants(), None);
    request.sequential = true;
    let (report, progress) = evaluate(&tiny, &request).unwrap();
    assert_eq!(report.protocol, "sequential");
    assert!(report.methods.iter().all(|m| m.records == 2));
    let phases: Vec<_> = progress.iter().filter(|p| p.stage.is_none()).map(|p| (p.phase, p.done)).collect();
    use lafn::eval::EvalPhase::{Editing, Scoring};
    assert_eq!(phases, vec![(Editing, 0), (Editing, 1), (Editing, 2), (Scoring, 0), (Scoring, 1), (Scoring, 2)]);
    let ours = report.methods.iter().find(|m| m.method == EvalMethod::LuLafns).unwrap();
    assert_eq!(ours.retrieval_fired[&Metric::Reliability], 100.0);
}

#[test]
fn a_sequential_run_whose_edits_workers_made_gives_the_report_of_one_process() {
    let tiny = tiny();
    let methods = [EvalMethod::Unedited, EvalMethod::LuLafns, EvalMethod::RandomNeurons];
    let mut request = request(&tiny, &methods, None);
    request.sequential = true;
    let (whole, _) = evaluate(&tiny, &request).unwrap();
    request.state_file = Some(tiny._dir.path().join("spread.state.jsonl"));
    let never = AtomicBool::new(false);
    let ((), workers) = with_thread_workers(&tiny, &request, |start| {
        edit_spread(&tiny.loaded, &request, 2, start, &never, &mut |_| {})
    })
    .unwrap();
    assert_eq!(workers, 2);
    let (scored, progress) = evaluate(&tiny, &request).unwrap();
    let edited_here = progress.iter().any(|p| p.phase == lafn::eval::EvalPhase::Editing && p.stage.is_some());
    assert!(!edited_here, "the run found every edit made by the workers");
    assert_eq!(outcomes(&scored), outcomes(&whole));
    // Made once: a second spread finds them and starts no worker.
    let ((), workers) = with_thread_workers(&tiny, &request, |start| {
        edit_spread(&tiny.loaded, &request, 2, start, &never, &mut |_| {})
    })
    .unwrap();
    assert_eq!(workers, 0);
}

#[test]
fn a_stopped_sequential_run_resumes_with_the_edits_it_made() {
    let tiny = tiny();
    let out = tiny._dir.path().join("seq.json");
    let state = state_path_for(&out);
    let methods = [EvalMethod::Unedited, EvalMethod::LuLafns, EvalMethod::RandomNeurons, EvalMethod::FtL];
    let sequential = || EvalRequest { sequential: true, ..request(&tiny, &methods, Some(&state)) };
    let (uninterrupted, _) = evaluate(&tiny, &EvalRequest { state_file: None, ..sequential() }).unwrap();
    let models = EvalModels { loaded: &tiny.loaded, dense: &tiny.dense };
    use lafn::eval::EvalPhase::Editing;
    // The records a run edited, as the count of records done when each edit began.
    let edited_records = |progress: &[Progress]| -> Vec<usize> {
        let mut records: Vec<usize> =
            progress.iter().filter(|p| p.phase == Editing && p.stage.is_some()).map(|p| p.done).collect();
        records.dedup();
        records
    };

    // Runs `request` until `records` records are edited; returns the records it edited.
    let edit_then_stop = |request: &EvalRequest, records: usize| -> Vec<usize> {
        let (cancel, mut progress) = (AtomicBool::new(false), Vec::new());
        let report = run(models, request, &cancel, &mut |p| {
            if (p.phase, p.done, p.stage) == (Editing, records, None) {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            progress.push(p);
        })
        .unwrap();
        assert_eq!(report.records_this_run, 0, "stopped before scoring");
        edited_records(&progress)
    };

    // Stopped once the first record is edited: nothing is scored, but that edit is kept.
    assert_eq!(edit_then_stop(&sequential(), 1), vec![0]);
    let kept = lafn::eval::edits_dir_for(&state);
    assert_eq!(kept, tiny._dir.path().join("seq.edits"));
    assert!(kept.join("record-1.json").exists() && !kept.join("record-2.json").exists());
    for method in ["lu-lafns", "random-neurons", "ft-l"] {
        assert!(kept.join(format!("record-1.{method}.safetensors")).exists(), "{method}'s update values are kept");
    }

    // The rerun edits only the second record and reports what one uninterrupted run reports.
    let (resumed, progress) = evaluate(&tiny, &sequential()).unwrap();
    assert_eq!(
        (progress[0].phase, progress[0].done, progress[0].resumed),
        (Editing, 1, 1),
        "the kept edit counts as resumed"
    );
    assert_eq!(edited_records(&progress), vec![1]);
    assert_eq!(outcomes(&resumed), outcomes(&uninterrupted));

    // A damaged kept record is made again; a run with other settings does not reuse any.
    std::fs::remove_file(&state).unwrap();
    std::fs::write(kept.join("record-2.json"), "{\"version\": 1, \"made_for\": [").unwrap();
    assert_eq!(edit_then_stop(&sequential(), 2), vec![1]);
    std::fs::remove_file(&state).unwrap();
    std::fs::write(kept.join("notes.txt"), "mine").unwrap();
    assert_eq!(edit_then_stop(&EvalRequest { config: config(3), ..sequential() }, 1), vec![0]);
    assert!(!kept.join("record-2.json").exists(), "the other run's edits are gone");
    assert_eq!(std::fs::read_to_string(kept.join("notes.txt")).unwrap(), "mine", "files not ours stay");
}

#[test]
fn languages_missing_from_records_are_reported_and_the_records_scored_in_the_others() {
    let tiny = tiny();
    // The second record loses its German block.
    let text = std::fs::read_to_string(&tiny.data).unwrap();
    let mut lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    lines[1].as_object_mut().unwrap().remove("de");
    let data = tiny._dir.path().join("partial.jsonl");
    std::fs::write(&data, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let mut request = request(&tiny, &[EvalMethod::Unedited], None);
    request.file = data;
    request.langs = Some(vec!["en".into(), "de".into(), "fr".into()]);
    let (report, _) = evaluate(&tiny, &request).unwrap();
    assert_eq!(report.langs, ["en", "de"], "no record has French");
    assert_eq!(report.missing_langs.get("de"), Some(&vec![2]));
    assert_eq!(report.missing_langs.get("fr"), Some(&vec![1, 2]));
    assert_eq!(report.methods[0].records, 2, "the second record is scored in English");
    let markdown = report.markdown();
    assert!(markdown.contains("`de`: missing from 1 of 2 records: 2"), "{markdown}");
    assert!(markdown.contains("`fr`: in no record (left out)"), "{markdown}");

    request.langs = Some(vec!["fr".into()]);
    let error = format!("{:#}", evaluate(&tiny, &request).unwrap_err());
    assert!(error.contains("no record has any of the languages fr"), "{error}");
}

#[test]
fn the_documented_settings_file_loads_and_typos_in_eval_settings_are_refused() {
    let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/eval-settings.json");
    let config = EvalConfig::load(&documented).unwrap();
    assert_eq!(config.eval, Default::default());
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"edit": {"steps": 3}, "eval": {"random_sed": 1}}"#).unwrap();
    let error = format!("{:#}", EvalConfig::load(&typo).unwrap_err());
    assert!(error.contains("random_sed"), "{error}");
}

/// The outcomes of every method, without the timings (which differ between runs).
fn outcomes(report: &EvalReport) -> Vec<(EvalMethod, Table, Table)> {
    report.methods.iter().map(|m| (m.method, m.teacher_forced.clone(), m.generated.clone())).collect()
}

#[test]
fn unedited_answers_kept_between_runs_give_the_report_of_computing_them() {
    let tiny = tiny();
    let methods = [EvalMethod::Unedited, EvalMethod::LuLafns, EvalMethod::Icl];
    let (computed, _) = evaluate(&tiny, &request(&tiny, &methods, None)).unwrap();
    let kept_dir = tiny._dir.path().join("unedited-answers");
    let kept = EvalRequest { unedited_answers: Some(kept_dir.clone()), ..request(&tiny, &methods, None) };
    let (first, _) = evaluate(&tiny, &kept).unwrap();
    let file = kept_dir.join(format!("{}.{}.jsonl", tiny.loaded.info.fingerprint, tiny.loaded.model.arithmetic()));
    let lines = state_lines(&file);
    assert!(lines > 10, "the answers of both scoring modes are kept: {lines} lines");
    let (second, _) = evaluate(&tiny, &kept).unwrap();
    assert_eq!(state_lines(&file), lines, "the second run computed nothing new");
    assert_eq!(outcomes(&first), outcomes(&computed));
    assert_eq!(outcomes(&second), outcomes(&computed));
}

/// Methods reuse the unedited answer where retrieval does not fire: that is only right if such a
/// question is answered exactly as the unedited model answers it.
#[test]
fn a_question_retrieval_does_not_fire_on_is_answered_as_the_unedited_model_answers_it() {
    let tiny = tiny();
    let model = &tiny.loaded.model;
    let tokenizer = &tiny.loaded.tokenizer;
    let records = lafn::eval::load_records(&tiny.data).unwrap();
    let langs = ["en".to_string(), "de".to_string()];
    let questions = lafn::eval::methods::questions(&records, 0, &langs).unwrap();
    let settings = MethodSettings::default();
    let empty = MemoryStore::new(&tiny.loaded.info.fingerprint);
    let mut cached = CachedEdits::new(empty, model, tokenizer, settings.retrieval, settings.scope).unwrap();
    let scoring = (Scoring::Both, PromptFrame::Auto);
    let unedited = answer_all(model, tokenizer, Answerer::Fixed(&[]), &questions, scoring, None).unwrap();
    let nothing_fires = answer_all(model, tokenizer, Answerer::Cached(&mut cached), &questions, scoring, None).unwrap();
    for (q, (before, after)) in questions.iter().zip(unedited.iter().zip(&nothing_fires)) {
        assert_eq!(after.fired, Some(false));
        assert_eq!((&after.predicted, &after.generated), (&before.predicted, &before.generated), "{}", q.prompt);
        assert!(before.predicted.is_some() && before.generated.is_some());
    }
}

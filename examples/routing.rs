//! Which entries act on each question when a benchmark's records are all edited into one cache (the
//! sequential protocol), without the edits: each record's group goes into the cache with its real
//! scope keys (the group as `lafn eval` edits it: every language, paraphrases from the settings) and
//! placeholder update values, and every question `lafn eval` asks is retrieved against all of them.
//! Edits are made independently of each other, so what the sequential protocol adds to the standard
//! one is exactly this routing: whether a record's own entry acts on its questions, and whether
//! another record's entry acts on a question (its new object then answers it).
//!
//!     cargo run --release --example routing -- FILE LANGS RECORDS [SETTINGS.json] > routing.jsonl
//!
//! One JSON line per question on stdout (record, language, metric, entries acting with their scope
//! scores, entries named but out of scope); on stderr, per metric, how often the record's own entry
//! acts, alone or beside another, and how often another record's entry acts. `LAFN_MODEL` names another
//! model than the default (a built-in name or a path).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::questions;
use lafn::eval::{load_records, Metric};
use lafn::method::apply::CachedEdits;
use lafn::method::cache::MemoryStore;
use lafn::method::prompts::fill_paraphrases;
use lafn::method::EditGroup;
use lafn::runtime::WeightMode;

/// Per metric: questions, and how many had their own entry act alone, beside another record's
/// entry, and another record's entry without their own.
#[derive(Default)]
struct Tally {
    questions: usize,
    own_alone: usize,
    own_and_other: usize,
    other_only: usize,
}

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, langs, records, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: routing FILE LANGS RECORDS [SETTINGS.json]"));
    };
    let mut data = load_records(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    data.truncate(records.parse().wrap_err("RECORDS must be a number")?);
    let settings = common::settings(rest.first())?;
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let store = MemoryStore::new(&loaded.info.fingerprint);
    let mut cached = CachedEdits::new(store, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())?;

    let started = Instant::now();
    let mut record_of: HashMap<String, usize> = HashMap::new();
    for (index, record) in data.iter().enumerate() {
        let mut group = EditGroup::from_benchmark(&format!("record-{}", index + 1), record, Some(&langs))?;
        fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        // Update values are never applied here.
        let id = cached.insert_routing_only(model, tokenizer, &group, &settings)?;
        record_of.insert(id, index);
        if (index + 1) % 25 == 0 {
            eprintln!("{} entries stored ({:.0} s)", index + 1, started.elapsed().as_secs_f64());
        }
    }

    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut own_by_lang: BTreeMap<(String, &'static str), (usize, usize)> = BTreeMap::new();
    let (mut asked, mut retrieving) = (0usize, 0f64);
    for index in 0..data.len() {
        for question in questions(&data, index, &langs)? {
            let started = Instant::now();
            let retrieved = cached.retrieve(model, tokenizer, &question.prompt)?;
            retrieving += started.elapsed().as_secs_f64();
            asked += 1;
            let acting: Vec<usize> = retrieved.hits.iter().map(|hit| record_of[&hit.entry_id]).collect();
            let own = acting.contains(&index);
            let other = acting.iter().any(|&r| r != index);
            let tally = tallies.entry(question.metric.name()).or_default();
            tally.questions += 1;
            match (own, other) {
                (true, false) => tally.own_alone += 1,
                (true, true) => tally.own_and_other += 1,
                (false, true) => tally.other_only += 1,
                (false, false) => {}
            }
            let by_lang = own_by_lang.entry((question.lang.clone(), question.metric.name())).or_default();
            by_lang.0 += 1;
            by_lang.1 += usize::from(own && !other);
            let described = |hits: &[lafn::method::retrieve::Hit]| -> Vec<serde_json::Value> {
                hits.iter()
                    .map(|h| serde_json::json!({"record": record_of[&h.entry_id], "scope": h.scope_score}))
                    .collect()
            };
            let line = serde_json::json!({
                "record": index, "lang": question.lang, "metric": question.metric.name(),
                "question": question.prompt, "acting": described(&retrieved.hits),
                "out_of_scope": described(&retrieved.out_of_scope),
            });
            println!("{line}");
        }
    }
    eprintln!(
        "\n{} entries in one cache, {asked} questions, retrieval {:.1} ms a question",
        data.len(),
        1000.0 * retrieving / asked.max(1) as f64
    );
    eprintln!("| metric | questions | own entry acts alone | own and another's | another's only | none |");
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let percent = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    for (metric, t) in &tallies {
        let none = t.questions - t.own_alone - t.own_and_other - t.other_only;
        eprintln!(
            "| {metric} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            t.questions,
            percent(t.own_alone, t.questions),
            percent(t.own_and_other, t.questions),
            percent(t.other_only, t.questions),
            percent(none, t.questions)
        );
    }
    for metric in [Metric::Reliability, Metric::Generality] {
        let cells: Vec<String> = (own_by_lang.iter())
            .filter(|((_, m), _)| *m == metric.name())
            .map(|((lang, _), (n, alone))| format!("{lang} {:.1}", percent(*alone, *n)))
            .collect();
        eprintln!("{}: own entry acts alone, by language: {}", metric.name(), cells.join(", "));
    }
    Ok(())
}

//! The scope gate's score for every question `lafn eval` asks about a benchmark record's subject, as
//! JSONL for `results/scripts/scope_curve.py` (which replays an ungated run at every threshold), and
//! on stderr how well the score tells rephrasings from same-subject other-relation questions. Each row
//! also holds, under `negatives`, each question's score against the entry's other-relation questions
//! (`scope::ScopeScore::other_relations`; null when none counts), for `scope_curve.py --margin` and
//! `results/scripts/scope_negatives_replay.py`; under `each_negative` its likeness to each of those
//! questions, described (language, template, likeness to the keys) in `other_relation_questions`.
//!
//!     cargo run --release --example scope_scores -- FILE LANGS RECORDS [SETTINGS.json] [--only N] > scores.jsonl
//!
//! RECORDS is the run's `--limit` (the other-relation questions come from those records); `--only N`
//! scores the first N of them, for a run stopped after N records. `LAFN_MODEL` names another model than
//! the default (a built-in name or a path); `LAFN_KEYS_WEIGHTS=dense` computes the entries' keys on
//! the dense weights, as editing stored them in stop 34 (before and since: on the quantized weights).
//! `TABLE_LIKENESS=1` adds, under `table`, each question's likeness to each relation of the relation
//! table (`assets/scope/relations.toml`) and the entry's own (`own`), for
//! `results/scripts/relation_table_replay.py` (run with `scope.relation_table_margin` null).

mod common;

use std::path::Path;

use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::specificity_questions;
use lafn::method::prompts::fill_paraphrases;
use lafn::method::relation_table;
use lafn::method::scope::{other_relation_questions, QuestionEncoder};
use lafn::method::{load_benchmark, EditGroup};
use lafn::runtime::WeightMode;

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || eyre!("usage: scope_scores FILE LANGS RECORDS [SETTINGS.json] [--only N]");
    let (only, args) = match args.as_slice() {
        [rest @ .., flag, n] if flag == "--only" => (Some(n.parse::<usize>().wrap_err("--only N")?), rest),
        all => (None, all),
    };
    let [file, langs, records, rest @ ..] = args else { return Err(usage()) };
    let mut data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    let count: usize = records.parse().wrap_err("RECORDS must be a number")?;
    // As `lafn eval --limit` does: the other records' questions (Specificity) come from these only.
    data.truncate(count);
    let settings = common::settings(rest.first())?;
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    eprintln!("relation projection: {}", if encoder.projected() { "fitted for this model" } else { "none" });
    // An entry's keys are computed as editing stores them: on the quantized weights, with `encoder`.
    let dense_keys = match std::env::var("LAFN_KEYS_WEIGHTS").as_deref() {
        Ok("dense") => {
            let dense = loaded.load_weights(WeightMode::Dense)?;
            let dense_encoder = QuestionEncoder::new(&dense, tokenizer, &settings.scope)?;
            Some((dense, dense_encoder))
        }
        _ => None,
    };
    let (key_model, key_encoder) = dense_keys.as_ref().map_or((model, &encoder), |(m, e)| (m, e));

    // With TABLE_LIKENESS set: the vectors of each relation's wordings in the relation table.
    let subject = [String::from("Zorbatron")];
    let table: Vec<candle_core::Tensor> = match std::env::var_os("TABLE_LIKENESS") {
        Some(_) => (relation_table::relations().iter())
            .map(|relation| {
                let vectors = (relation.questions.iter())
                    .map(|q| encoder.encode(model, tokenizer, &q.replace("{}", &subject[0]), &subject))
                    .collect::<lafn::Result<Vec<_>>>()?;
                Ok(candle_core::Tensor::stack(&vectors, 0)?)
            })
            .collect::<lafn::Result<_>>()?,
        None => Vec::new(),
    };
    let (mut rephrasings, mut other_relations) = (Vec::new(), Vec::new());
    for index in 0..only.unwrap_or(data.len()).min(data.len()) {
        // The group as `lafn eval` edits it: every language, paraphrases from the settings.
        let mut group = EditGroup::from_benchmark(&format!("record-{index}"), &data[index], Some(&langs))?;
        fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        let keys = key_encoder.keys(key_model, tokenizer, &group)?;
        let subjects = group.subjects();
        // Each other-relation question: its language, its template's index in the language table and
        // its likeness to the entry's keys (what decides whether it counts).
        let prepared = encoder.prepare(&keys, &Default::default())?;
        let key_similarity = encoder.similarities(&keys, &keys.keys, &keys.other_relations)?;
        let templates = other_relation_questions(&group).len() / group.descriptors.len();
        let about: Vec<serde_json::Value> = (key_similarity.iter().enumerate())
            .map(|(i, s)| {
                let lang = &group.descriptors[i / templates].lang;
                serde_json::json!({"lang": lang, "template": i % templates, "key_similarity": s})
            })
            .collect();
        // Per relation of the table, its wordings' best likeness to a row of `vectors`.
        let table_like = |vectors: &candle_core::Tensor| -> lafn::Result<Vec<f32>> {
            (table.iter())
                .map(|relation| {
                    Ok(encoder.similarities(&keys, relation, vectors)?.into_iter().fold(f32::MIN, f32::max))
                })
                .collect()
        };
        let table_own = table_like(&keys.keys)?;
        // The table likeness of every question scored, in order.
        let table_of = std::cell::RefCell::new(Vec::new());
        // (score against the entry's keys, against its other-relation questions that count, against
        // each other-relation question)
        let score = |question: &str| -> lafn::Result<(f32, Option<f32>, Vec<f32>)> {
            let query = encoder.encode(model, tokenizer, question, &subjects)?;
            let score = encoder.score(&prepared, &query)?;
            let each = encoder.similarities(&keys, &query.unsqueeze(0)?, &keys.other_relations)?;
            table_of.borrow_mut().push(table_like(&query.unsqueeze(0)?)?);
            Ok((score.edited, score.other_relations, each))
        };
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            table_of.borrow_mut().clear();
            let src = score(&entry.src)?;
            let rephrase = score(&entry.rephrase)?;
            let specificity: Vec<(f32, Option<f32>, Vec<f32>)> = (specificity_questions(&data, index, lang).iter())
                .map(|(question, _)| score(question))
                .collect::<lafn::Result<_>>()?;
            let distinct = if entry.rephrase.trim() != entry.src.trim() { vec![rephrase.clone()] } else { Vec::new() };
            rephrasings.extend(distinct.iter().map(|s| s.0));
            other_relations.extend(specificity.iter().map(|s| s.0));
            type Scores = [(f32, Option<f32>, Vec<f32>)];
            let keys_of = |scores: &Scores| scores.iter().map(|s| s.0).collect::<Vec<_>>();
            let negatives_of = |scores: &Scores| scores.iter().map(|s| s.1).collect::<Vec<_>>();
            let each_of = |scores: &Scores| scores.iter().map(|s| s.2.clone()).collect::<Vec<_>>();
            let mut row = serde_json::json!({"record": index, "lang": lang, "reliability": [src.0],
                "generality": [rephrase.0], "distinct-generality": keys_of(&distinct),
                "specificity": keys_of(&specificity), "negatives": {"reliability": [src.1],
                "distinct-generality": negatives_of(&distinct), "specificity": negatives_of(&specificity)},
                "other_relation_questions": about, "each_negative": {"reliability": [src.2],
                "distinct-generality": each_of(&distinct), "specificity": each_of(&specificity)}});
            if !table.is_empty() {
                // Rows of `table_of`: src, rephrase, then the specificity questions.
                let table_of = table_of.borrow();
                let distinct_table: Vec<&Vec<f32>> = if distinct.is_empty() { vec![] } else { vec![&table_of[1]] };
                row["table"] = serde_json::json!({"own": table_own, "reliability": [&table_of[0]],
                    "distinct-generality": distinct_table, "specificity": &table_of[2..]});
            }
            println!("{row}");
        }
    }
    let pairs = rephrasings.len() * other_relations.len();
    let above: f64 = (rephrasings.iter())
        .flat_map(|r| {
            other_relations.iter().map(move |o| {
                if r > o {
                    1.0
                } else if r == o {
                    0.5
                } else {
                    0.0
                }
            })
        })
        .sum();
    eprintln!(
        "{} rephrasings (!= src), {} other-relation questions: ROC AUC {:.3}",
        rephrasings.len(),
        other_relations.len(),
        above / pairs.max(1) as f64
    );
    Ok(())
}

//! The scope encoder's vectors (residual space, before any projection) of every question `lafn eval`
//! asks about a benchmark record's subject, labelled, for fitting a model's relation projection
//! (`results/scripts/fit_scope_projection.py`) and for analysing the gate.
//!
//!     cargo run --release --example scope_vectors -- FILE LANGS FIRST COUNT OUT_PREFIX [--no-paraphrases | --fit-only]
//!
//! Writes OUT_PREFIX.f32 (rows of `hidden` little-endian f32), OUT_PREFIX.jsonl (one label per row:
//! record, language, kind = prompt | paraphrase | src | rephrase | rephrase-same | portability | spec | other, for
//! spec the record whose relation it asks, for other the language table's template) and
//! OUT_PREFIX.center.f32 (the encoder's center, which identifies the model). `--no-paraphrases`
//! skips generating the prompts' paraphrases (the slow part), for records used only to fit;
//! `--fit-only` also leaves out the language table's other-relation questions, which the fit does not
//! use (half the questions).
//! `LAFN_MODEL` names another model than the default (a built-in name or a path); `LAFN_WEIGHTS=dense`
//! reads the questions with the dense weights (editing's), several times faster on long batches than
//! the quantized ones chat uses, and close enough that a projection fitted on either is the model's.

mod common;

use std::io::Write;
use std::path::Path;

use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::specificity_questions;
use lafn::method::prompts::{fill_paraphrases, other_relation_questions};
use lafn::method::scope::QuestionEncoder;
use lafn::method::{load_benchmark, EditGroup, MethodSettings};

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ((with_paraphrases, with_other_relations), args) = match args.split_last() {
        Some((last, rest)) if last == "--no-paraphrases" => ((false, true), rest),
        Some((last, rest)) if last == "--fit-only" => ((false, false), rest),
        _ => ((true, true), args.as_slice()),
    };
    let [file, langs, first, count, out] = args else {
        return Err(eyre!("usage: scope_vectors FILE LANGS FIRST COUNT OUT_PREFIX [--no-paraphrases | --fit-only]"));
    };
    let data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    let first: usize = first.parse().wrap_err("FIRST")?;
    let count: usize = count.parse().wrap_err("COUNT")?;
    let settings = MethodSettings::default();
    let loaded = common::load_model(common::weight_mode()?)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    common::write_center(&encoder, out)?;
    let mut vectors = std::io::BufWriter::new(std::fs::File::create(format!("{out}.f32"))?);
    let mut labels = std::io::BufWriter::new(std::fs::File::create(format!("{out}.jsonl"))?);
    let records = data.len();
    for index in first..(first + count).min(records) {
        let started = std::time::Instant::now();
        let Ok(mut group) = EditGroup::from_benchmark(&format!("record-{index}"), &data[index], Some(&langs)) else {
            continue;
        };
        if with_paraphrases {
            fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        }
        let mut texts = Vec::new();
        let mut meta = Vec::new();
        for d in &group.descriptors {
            texts.push(d.prompt.clone());
            meta.push(serde_json::json!({"record": index, "lang": d.lang, "kind": "prompt"}));
            for p in d.all_paraphrases() {
                texts.push(p.to_string());
                meta.push(serde_json::json!({"record": index, "lang": d.lang, "kind": "paraphrase"}));
            }
        }
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            texts.push(entry.src.clone());
            meta.push(serde_json::json!({"record": index, "lang": lang, "kind": "src"}));
            let kind = if entry.rephrase.trim() == entry.src.trim() { "rephrase-same" } else { "rephrase" };
            texts.push(entry.rephrase.clone());
            meta.push(serde_json::json!({"record": index, "lang": lang, "kind": kind}));
            // A question about the new object, through the subject ("Which building did the architect
            // of X also design?"): another fact, which asks the edited relation on the way.
            if !entry.portability.question.trim().is_empty() {
                texts.push(entry.portability.question.clone());
                meta.push(serde_json::json!({"record": index, "lang": lang, "kind": "portability"}));
            }
            for (question, _) in specificity_questions(&data, index, lang) {
                // The record whose relation the question asks: the one whose src it was made from.
                let from = (0..records).find(|&j| {
                    data[j]
                        .get(lang)
                        .is_some_and(|o| question == o.src.replacen(o.subject.trim(), entry.subject.trim(), 1))
                });
                texts.push(question);
                meta.push(serde_json::json!({"record": index, "lang": lang, "kind": "spec", "from": from}));
            }
        }
        // The language table's other-relation questions, as the gate keeps them (`ScopeKeys`).
        for d in group.descriptors.iter().filter(|_| with_other_relations) {
            for (template, question) in other_relation_questions(&d.lang, &d.subject).into_iter().enumerate() {
                texts.push(question);
                meta.push(serde_json::json!({"record": index, "lang": d.lang, "kind": "other", "template": template}));
            }
        }
        let encoded = encoder.encode_about(model, tokenizer, &group, &texts)?;
        for row in encoded.to_vec2::<f32>()? {
            for v in row {
                vectors.write_all(&v.to_le_bytes())?;
            }
        }
        for (m, t) in meta.iter().zip(&texts) {
            let mut m = m.clone();
            m["text"] = serde_json::Value::String(t.clone());
            writeln!(labels, "{m}")?;
        }
        eprintln!("record {index}: {} texts in {:.1?}", texts.len(), started.elapsed());
    }
    Ok(())
}

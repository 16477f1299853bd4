//! The scope gate's score for every question `lafn eval` asks about a benchmark record's subject, as
//! JSONL for `results/scripts/scope_curve.py` (which replays an ungated run at every threshold), and
//! on stderr how well the score tells rephrasings from same-subject other-relation questions. Each row
//! also holds, under `negatives`, each question's score against the language table's other-relation
//! questions about the subject, for `results/scripts/scope_negatives_replay.py`.
//!
//!     cargo run --release --example scope_scores -- FILE LANGS RECORDS [SETTINGS.json] > scores.jsonl

use std::path::Path;

use candle_core::Device;
use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::specificity_questions;
use lafn::method::prompts::{fill_paraphrases, other_relation_questions};
use lafn::method::scope::{QuestionEncoder, ScopeKeys};
use lafn::method::{load_benchmark, load_settings, EditGroup, MethodSettings};
use lafn::runtime::{LoadedModel, WeightMode};

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, langs, records, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: scope_scores FILE LANGS RECORDS [SETTINGS.json]"));
    };
    let data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    let count: usize = records.parse().wrap_err("RECORDS must be a number")?;
    let settings = match rest.first() {
        Some(path) => load_settings(Path::new(path))?,
        None => MethodSettings::default(),
    };
    let files = lafn::fetch::resolve(lafn::fetch::DEFAULT_MODEL, &mut |_| {})?;
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    eprintln!("relation projection: {}", if encoder.projected() { "fitted for this model" } else { "none" });

    let (mut rephrasings, mut other_relations) = (Vec::new(), Vec::new());
    for index in 0..count.min(data.len()) {
        // The group as `lafn eval` edits it: every language, paraphrases from the settings.
        let mut group = EditGroup::from_benchmark(&format!("record-{index}"), &data[index], Some(&langs))?;
        fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        let keys = encoder.keys(model, tokenizer, &group)?;
        // Negatives: the language table's other-relation questions about the group's subject.
        let negatives: Vec<String> =
            group.descriptors.iter().flat_map(|d| other_relation_questions(&d.lang, &d.subject)).collect();
        let negatives =
            ScopeKeys { layer: keys.layer, keys: encoder.encode_about(model, tokenizer, &group, &negatives)? };
        let subjects = group.subjects();
        // (score against the entry's keys, score against its negatives)
        let score = |question: &str| -> lafn::Result<(f32, f32)> {
            let query = encoder.encode(model, tokenizer, question, &subjects)?;
            Ok((encoder.score(&keys, &query)?, encoder.score(&negatives, &query)?))
        };
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            let src = score(&entry.src)?;
            let rephrase = score(&entry.rephrase)?;
            let specificity: Vec<(f32, f32)> = (specificity_questions(&data, index, lang).iter())
                .map(|(question, _)| score(question))
                .collect::<lafn::Result<_>>()?;
            let distinct = if entry.rephrase.trim() != entry.src.trim() { vec![rephrase] } else { Vec::new() };
            rephrasings.extend(distinct.iter().map(|s| s.0));
            other_relations.extend(specificity.iter().map(|s| s.0));
            let keys_of = |scores: &[(f32, f32)]| scores.iter().map(|s| s.0).collect::<Vec<_>>();
            let negatives_of = |scores: &[(f32, f32)]| scores.iter().map(|s| s.1).collect::<Vec<_>>();
            let row = serde_json::json!({"record": index, "lang": lang, "reliability": [src.0],
                "generality": [rephrase.0], "distinct-generality": keys_of(&distinct),
                "specificity": keys_of(&specificity), "negatives": {"reliability": [src.1],
                "distinct-generality": negatives_of(&distinct), "specificity": negatives_of(&specificity)}});
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

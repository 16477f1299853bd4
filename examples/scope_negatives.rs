//! A gate with negatives, measured before it is built: for every question `lafn eval` asks about a
//! benchmark record's subject, its scope score against the record's keys (`key`) and against the
//! language table's other-relation template questions about the same subject in the group's languages
//! (`neg`), as JSONL. A gate that also asks `key - neg >= margin` is replayed from it
//! (docs/results.md, "Gate v3").
//!
//!     cargo run --release --example scope_negatives -- FILE LANGS RECORDS > scores.jsonl
use candle_core::Device;
use color_eyre::eyre::eyre;
use lafn::eval::methods::specificity_questions;
use lafn::method::prompts::{fill_paraphrases, other_relation_questions};
use lafn::method::scope::{QuestionEncoder, ScopeKeys};
use lafn::method::{load_benchmark, EditGroup, MethodSettings};
use lafn::runtime::{LoadedModel, WeightMode};
use std::path::Path;

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(file), Some(langs)) = (args.first(), args.get(1)) else {
        return Err(eyre!("usage: scope_negatives FILE LANGS RECORDS"));
    };
    let data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    let count: usize =
        args.get(2).and_then(|c| c.parse().ok()).ok_or_else(|| eyre!("usage: scope_negatives FILE LANGS RECORDS"))?;
    let settings = MethodSettings::default();
    let files = lafn::fetch::resolve(lafn::fetch::DEFAULT_MODEL, &mut |_| {})?;
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    for index in 0..count.min(data.len()) {
        let mut group = EditGroup::from_benchmark(&format!("record-{index}"), &data[index], Some(&langs))?;
        fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        let keys = encoder.keys(model, tokenizer, &group)?;
        let negatives: Vec<String> =
            group.descriptors.iter().flat_map(|d| other_relation_questions(&d.lang, &d.subject)).collect();
        let negatives =
            ScopeKeys { layer: keys.layer, keys: encoder.encode_about(model, tokenizer, &group, &negatives)? };
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            let mut questions = vec![("src", entry.src.clone())];
            if entry.rephrase.trim() != entry.src.trim() {
                questions.push(("rephrase", entry.rephrase.clone()));
            }
            questions.extend(specificity_questions(&data, index, lang).into_iter().map(|(q, _)| ("spec", q)));
            let texts: Vec<String> = questions.iter().map(|(_, q)| q.clone()).collect();
            let encoded = encoder.encode_about(model, tokenizer, &group, &texts)?;
            let key_scores = encoder.scores(&keys, &encoded)?;
            let neg_scores = encoder.scores(&negatives, &encoded)?;
            for (((kind, _), k), n) in questions.iter().zip(key_scores).zip(neg_scores) {
                println!("{}", serde_json::json!({"record": index, "lang": lang, "kind": kind, "key": k, "neg": n}));
            }
        }
        eprintln!("record {index}");
    }
    Ok(())
}

//! Whether an edit's located neurons tell a question that asks its fact from one that asks another
//! fact of its subject: for every question `lafn eval` asks about a benchmark record's subject, the
//! FFN activations of the record's LAFNs at the question's last token (unedited model, the quantized
//! weights chat runs), beside the scope gate's scores; per record first, the same activations on the
//! edit's prompts and paraphrases and on the language table's other-relation questions, per language.
//! JSONL on stdout, for `results/scripts/neuron_gate.py` (docs/results.md, stop 42: not kept).
//!
//!     cargo run --release --example neuron_gate -- FILE LANGS RECORDS > neurons.jsonl

mod common;

use std::path::Path;

use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::specificity_questions;
use lafn::method::prompts::fill_paraphrases;
use lafn::method::scope::QuestionEncoder;
use lafn::method::{load_benchmark, locate, EditGroup};
use lafn::runtime::{Hooks, Model, Tokenizer, WeightMode};

/// The activations of `neurons` (by layer) at the last token of `text`, concatenated layer by layer.
fn lafn_activations(
    model: &Model,
    tokenizer: &Tokenizer,
    text: &str,
    neurons: &[(usize, Vec<u32>)],
) -> lafn::Result<Vec<f32>> {
    let ids = tokenizer.encode_prompt(text)?;
    let input = candle_core::Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
    let layers: Vec<usize> = neurons.iter().map(|(l, _)| *l).collect();
    let last_layer = *layers.iter().max().expect("a located layer");
    let hooks = Hooks { capture_layers: &layers, stop_after_layer: Some(last_layer), ..Hooks::default() };
    let out = model.forward(&input, None, hooks)?;
    let mut values = Vec::new();
    for (layer, ids_of) in neurons {
        let row: Vec<f32> = out.activations[layer].get(0)?.get(ids.len() - 1)?.to_vec1()?;
        values.extend(ids_of.iter().map(|&j| row[j as usize]));
    }
    Ok(values)
}

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, langs, records] = args.as_slice() else {
        return Err(eyre!("usage: neuron_gate FILE LANGS RECORDS"));
    };
    let mut data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    data.truncate(records.parse().wrap_err("RECORDS must be a number")?);
    let settings = common::settings(None)?;
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let dense = loaded.editing_weights()?;
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    for index in 0..data.len() {
        let mut group = EditGroup::from_benchmark(&format!("record-{index}"), &data[index], Some(&langs))?;
        fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
        let located = locate(&dense, tokenizer, &group, &settings.locate)?;
        let neurons: Vec<(usize, Vec<u32>)> = located.selected.clone().into_iter().collect();
        let prepared = encoder.prepare(&encoder.keys(model, tokenizer, &group)?, &Default::default())?;
        let subjects = group.subjects();
        // The edit's own prompts and paraphrases, per language: what its neurons do on its fact.
        let (mut keys, mut negatives) = (serde_json::Map::new(), serde_json::Map::new());
        for d in &group.descriptors {
            let texts = std::iter::once(d.prompt.as_str()).chain(d.all_paraphrases());
            let rows: Vec<Vec<f32>> =
                texts.map(|t| lafn_activations(model, tokenizer, t, &neurons)).collect::<lafn::Result<_>>()?;
            keys.insert(d.lang.clone(), serde_json::json!(rows));
            let others: Vec<Vec<f32>> = (lafn::method::prompts::other_relation_questions(&d.lang, &d.subject).iter())
                .map(|q| lafn_activations(model, tokenizer, q, &neurons))
                .collect::<lafn::Result<_>>()?;
            negatives.insert(d.lang.clone(), serde_json::json!(others));
        }
        let layers: Vec<usize> = neurons.iter().map(|n| n.0).collect();
        println!("{}", serde_json::json!({"record": index, "keys": keys, "negatives": negatives, "layers": layers}));
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            let mut questions = vec![("reliability", entry.src.clone())];
            if entry.rephrase.trim() != entry.src.trim() {
                questions.push(("distinct-generality", entry.rephrase.clone()));
            }
            questions.extend(specificity_questions(&data, index, lang).into_iter().map(|(q, _)| ("specificity", q)));
            for (kind, question) in questions {
                let score = encoder.score(&prepared, &encoder.encode(model, tokenizer, &question, &subjects)?)?;
                let activations = lafn_activations(model, tokenizer, &question, &neurons)?;
                let row = serde_json::json!({"record": index, "lang": lang, "kind": kind, "question": question,
                    "scope": score.edited, "other": score.other_relations, "in_scope": settings.scope.in_scope(score),
                    "activations": activations});
                println!("{row}");
            }
        }
        eprintln!("record {index} done");
    }
    Ok(())
}

//! Whether the model itself tells which English subject another language's spelling of a subject names,
//! where text cannot (`cross_script_retrieval`): each record's subject, alone after the BOS, is read as
//! the residual stream at its last token, DEPTH of the model's layers deep, taken relative to the mean
//! of its language's subjects; each non-English subject's nearest English subject (cosine) among the
//! records' is taken. A measurement for keying edits by the model's state of their subject.
//!
//!     cargo run --release --example subject_states -- ../shared/data/bmike53.dev.jsonl RECORDS [DEPTH]
//!
//! Prints, per language, how often the nearest English subject is the record's own, over the subjects
//! written otherwise than in English and over all. DEPTH: a fraction of the layers (default 2/3).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Tensor, D};
use color_eyre::eyre::eyre;
use lafn::method::load_benchmark;
use lafn::method::scope::ScopeSettings;
use lafn::runtime::{Hooks, WeightMode};

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, count) = match args.as_slice() {
        [file, count, ..] => (file, count.parse::<usize>()?),
        _ => return Err(eyre!("usage: subject_states FILE RECORDS [DEPTH]")),
    };
    let depth: f32 = args.get(2).map(|d| d.parse()).transpose()?.unwrap_or(2.0 / 3.0);
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let layer = ScopeSettings { depth, ..ScopeSettings::default() }.layer(model.config().num_layers);
    let records: Vec<_> = load_benchmark(Path::new(file))?.into_iter().take(count).collect();
    // Per language: (record, subject written as in English, vector).
    let mut states: BTreeMap<String, Vec<(usize, bool, Tensor)>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        let Some(en) = record.get("en") else { continue };
        for (lang, entry) in record.iter() {
            let ids = tokenizer.encode_prompt(entry.subject.trim())?;
            let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
            let hooks = Hooks { stop_after_layer: Some(layer), ..Hooks::default() };
            let out = model.forward(&input, None, hooks)?;
            let last = out.residual.get(0)?.get(ids.len() - 1)?;
            states.entry(lang.to_string()).or_default().push((i, entry.subject.trim() == en.subject.trim(), last));
        }
    }
    let centered = |rows: &[(usize, bool, Tensor)]| -> lafn::Result<Tensor> {
        let stacked = Tensor::stack(&rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(), 0)?;
        let centered = stacked.broadcast_sub(&stacked.mean_keepdim(0)?)?;
        Ok(centered.broadcast_div(&centered.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?)
    };
    let english = states.get("en").ok_or_else(|| eyre!("no English subjects"))?;
    let english_vectors = centered(english)?;
    println!("layer {layer}; | lang | written otherwise: nearest English subject is its own | all |");
    for (lang, rows) in states.iter().filter(|(lang, _)| *lang != "en") {
        let similarities = centered(rows)?.matmul(&english_vectors.t()?)?;
        let nearest: Vec<u32> = similarities.argmax(D::Minus1)?.to_vec1()?;
        let (mut otherwise, mut otherwise_right, mut right) = (0, 0, 0);
        for ((record, as_english, _), &n) in rows.iter().zip(&nearest) {
            let own = english[n as usize].0 == *record;
            right += usize::from(own);
            if !as_english {
                otherwise += 1;
                otherwise_right += usize::from(own);
            }
        }
        println!("| {lang} | {otherwise_right} of {otherwise} | {right} of {} |", rows.len());
    }
    Ok(())
}

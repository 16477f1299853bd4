//! Experiment: does the unedited model's next-token distribution tell a question that asks the edited
//! relation from one that asks another relation of the same subject, where the scope gate cannot (the
//! languages the model knows poorly)? For each record and language: the distribution after the edit's
//! prompt (framed as chat frames it), and its likeness to the distribution after the rephrasing and
//! after each same-subject other-relation question (eval's Specificity questions). JSONL on stdout.
//!
//!     cargo run --release --example answer_signature -- FILE LANGS RECORDS [FIRST] > signature.jsonl

mod common;

use std::path::Path;

use candle_core::{Tensor, D};
use color_eyre::eyre::{eyre, WrapErr};
use lafn::eval::methods::specificity_questions;
use lafn::method::load_benchmark;
use lafn::runtime::{Hooks, PromptFrame, WeightMode};

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, langs, records, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: answer_signature FILE LANGS RECORDS [FIRST]"));
    };
    let mut data = load_benchmark(Path::new(file))?;
    let langs: Vec<String> = langs.split(',').map(String::from).collect();
    let count: usize = records.parse().wrap_err("RECORDS")?;
    data.truncate(count);
    let first: usize = rest.first().map(|f| f.parse()).transpose()?.unwrap_or(0);
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let frame = tokenizer.chat_frame(PromptFrame::Auto)?;
    // Log-probabilities of the next token after the framed question, (vocab).
    let next = |question: &str| -> lafn::Result<Tensor> {
        let ids = tokenizer.encode_prompt(&frame.frame(question)?)?;
        let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
        let out = model.forward(&input, None, Hooks::default())?;
        let hidden = out.hidden.expect("hidden states").get(0)?.get(ids.len() - 1)?.unsqueeze(0)?;
        Ok(candle_nn::ops::log_softmax(&model.logits(&hidden)?, D::Minus1)?.squeeze(0)?)
    };
    // Likenesses of two next-token distributions: Bhattacharyya coefficient (sum of sqrt(p q)), and
    // the share of each one's top 10 tokens in the other's top 10.
    let likeness = |a: &Tensor, b: &Tensor| -> lafn::Result<(f32, f32)> {
        let bc = ((a + b)? * 0.5)?.exp()?.sum_all()?.to_scalar::<f32>()?;
        let top = |t: &Tensor| -> lafn::Result<Vec<u32>> {
            let v: Vec<f32> = t.to_vec1()?;
            let mut idx: Vec<u32> = (0..v.len() as u32).collect();
            idx.select_nth_unstable_by(10, |&i, &j| v[j as usize].total_cmp(&v[i as usize]));
            Ok(idx[..10].to_vec())
        };
        let (ta, tb) = (top(a)?, top(b)?);
        Ok((bc, ta.iter().filter(|t| tb.contains(t)).count() as f32 / 10.0))
    };
    for index in first..data.len() {
        for lang in &langs {
            let Some(entry) = data[index].get(lang) else { continue };
            let prompt = next(&entry.src)?;
            let rephrase = match entry.rephrase.trim() != entry.src.trim() {
                true => Some(likeness(&prompt, &next(&entry.rephrase)?)?),
                false => None,
            };
            let others: Vec<(f32, f32)> = (specificity_questions(&data, index, lang).iter())
                .map(|(question, _)| likeness(&prompt, &next(question)?))
                .collect::<lafn::Result<_>>()?;
            let row = serde_json::json!({"record": index, "lang": lang, "rephrase": rephrase, "others": others});
            println!("{row}");
        }
    }
    Ok(())
}

//! The scope gate's scores of typed questions against one-language edits of a fact, without editing:
//! for each edit prompt, the entry's keys are made as `lafn edit` makes them (the prompt and its
//! template paraphrases), and each query gets its score and its likeness to the subject's other
//! relations (`score/others`; the gate lets the entry act at `scope.threshold`, 0.6 by default, when
//! the score also beats the others).
//!
//!     cargo run --release --example scope_probe -- [--settings SETTINGS.json] SUBJECT LANG "EDIT PROMPT" ["EDIT PROMPT" ...] -- QUERY ...
//!
//! `LAFN_MODEL` names another model than the default (a built-in name or a path).

mod common;

use color_eyre::eyre::eyre;
use lafn::method::scope::QuestionEncoder;
use lafn::runtime::WeightMode;

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || eyre!("usage: scope_probe [--settings SETTINGS.json] SUBJECT LANG EDIT_PROMPT... -- QUERY...");
    let (settings, args) = match args.as_slice() {
        [flag, path, rest @ ..] if flag == "--settings" => (common::settings(Some(path))?, rest),
        all => (common::settings(None)?, all),
    };
    let split = args.iter().position(|a| a == "--").ok_or_else(usage)?;
    let (head, queries) = (&args[..split], &args[split + 1..]);
    let [subject, lang, edits @ ..] = head else { return Err(usage()) };
    if edits.is_empty() || queries.is_empty() {
        return Err(usage());
    }
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    let subjects = [subject.clone()];
    let vectors: Vec<_> =
        queries.iter().map(|q| encoder.encode(model, tokenizer, q, &subjects)).collect::<lafn::Result<_>>()?;
    println!("| edit prompt | {} |", queries.join(" | "));
    println!("|---|{}", "---:|".repeat(queries.len()));
    for prompt in edits {
        let keys = common::one_language_keys(&loaded, &encoder, &settings, [lang, subject, prompt])?;
        let mut row = format!("| {prompt} |");
        for vector in &vectors {
            let score = encoder.score(&keys, vector)?;
            let others = score.other_relations.map_or(String::from("-"), |o| format!("{o:.2}"));
            row += &format!(" {:.2}/{others} |", score.edited);
        }
        println!("{row}");
    }
    Ok(())
}

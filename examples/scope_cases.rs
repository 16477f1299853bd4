//! The scope gate on hand-written cases: one-language edits of facts about people, works, companies and
//! places, each with questions that ask its fact worded otherwise (`+`) and questions about the
//! subject's other relations (`-`). Prints each question's score (`score/others`) and whether it fired,
//! then how many of each kind fired.
//!
//!     cargo run --release --example scope_cases -- CASES.tsv LANG [SETTINGS.json]
//!
//! CASES.tsv: one case a line, tab-separated: subject, edit prompt, then questions each marked `+` or
//! `-` (`results/scope-cases-{en,de,fr}.tsv`). `LAFN_MODEL` names another model than the default.

mod common;

use color_eyre::eyre::{bail, eyre, WrapErr};
use lafn::method::scope::QuestionEncoder;
use lafn::runtime::WeightMode;

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cases, lang, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: scope_cases CASES.tsv LANG [SETTINGS.json]"));
    };
    let settings = common::settings(rest.first())?;
    let loaded = common::load_model(WeightMode::Quantized)?;
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    // (fired, asked) for questions that ask the edited fact, then for those that do not.
    let mut counts = [(0usize, 0usize); 2];
    let text = std::fs::read_to_string(cases).wrap_err_with(|| format!("reading {cases}"))?;
    for (line_number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let [subject, prompt, questions @ ..] = &line.split('\t').collect::<Vec<_>>()[..] else {
            bail!("{cases}:{}: a case needs a subject, a prompt and questions", line_number + 1);
        };
        let keys = common::one_language_keys(&loaded, &encoder, &settings, [lang, subject, prompt])?;
        println!("{prompt}");
        for question in questions {
            let (asks, question) = match question.split_at(1) {
                ("+", q) => (true, q),
                ("-", q) => (false, q),
                _ => bail!("{cases}:{}: `{question}` is not marked + or -", line_number + 1),
            };
            let score = encoder.score(&keys, &encoder.encode(model, tokenizer, question, &[subject.to_string()])?)?;
            let fired = settings.scope.in_scope(score);
            let others = score.other_relations.map_or(String::from("-"), |o| format!("{o:.2}"));
            let mark = if asks { '+' } else { '-' };
            println!("  {mark} {question}: {:.2}/{others}{}", score.edited, if fired { " FIRED" } else { "" });
            let count = &mut counts[usize::from(!asks)];
            count.0 += usize::from(fired);
            count.1 += 1;
        }
    }
    let [(asks_fired, asks), (others_fired, others)] = counts;
    println!("asking the edited fact: {asks_fired}/{asks} fired; asking another: {others_fired}/{others} fired");
    Ok(())
}

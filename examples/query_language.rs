//! Experiment: which of an edit's languages is a question written in? The answer an edit gives is the
//! one trained in that language; a wrong guess answers in another language's words. For each record,
//! its languages in `LANGS` as one edit (each with its `src` prompt), and each language's rephrasing,
//! portability question and specificity questions: how often a rule picks the question's own language
//! (or one trained to the same answer). Rules: the prompt sharing the most tokens with the question
//! (the rule before stop 52), and the one written most alike, subjects aside (`text::writing`).
//!
//!     cargo run --release --example query_language -- FILE LANGS [RECORDS]
//!
//! With `LIKENESS=1` it also prints, per question, the n-gram likeness (of one script) to its own
//! language's prompt and the best of the others': whether a threshold could tell a question in none of
//! an edit's languages.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use color_eyre::eyre::eyre;
use lafn::eval::methods::specificity_questions;
use lafn::method::load_benchmark;
use lafn::runtime::WeightMode;
use lafn::text::writing::Writing;

fn main() -> lafn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, langs, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: query_language FILE LANGS [RECORDS]"));
    };
    let mut data = load_benchmark(Path::new(file))?;
    if let Some(count) = rest.first() {
        data.truncate(count.parse()?);
    }
    let langs: Vec<&str> = langs.split(',').collect();
    let loaded = common::load_model(WeightMode::Quantized)?;
    let tokenizer = &loaded.tokenizer;
    let mut right: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for (index, record) in data.iter().enumerate() {
        let entries: Vec<_> = langs.iter().filter_map(|&lang| record.get(lang).map(|e| (lang, e))).collect();
        let subjects: Vec<&str> = entries.iter().map(|(_, e)| e.subject.as_str()).collect();
        let trained: Vec<(&str, &str, Vec<u32>, Writing)> = (entries.iter())
            .map(|(lang, e)| {
                Ok((*lang, e.alt.trim(), tokenizer.encode_prompt(&e.src)?, Writing::of(&e.src, &[&e.subject])))
            })
            .collect::<lafn::Result<_>>()?;
        for (lang, entry) in &entries {
            let mut questions =
                vec![("rephrase", entry.rephrase.clone()), ("portability", entry.portability.question.clone())];
            questions.extend(specificity_questions(&data, index, lang).into_iter().map(|(q, _)| ("specificity", q)));
            for (kind, question) in questions {
                let ids = tokenizer.encode_prompt(&question)?;
                let writing = Writing::of(&question, &subjects);
                let shared = |ids_a: &[u32]| ids_a.iter().filter(|t| ids.contains(t)).count();
                let by_tokens = trained.iter().max_by_key(|t| shared(&t.2)).unwrap();
                let by_writing = (trained.iter())
                    .max_by(|a, b| {
                        (a.3.likeness(&writing).total_cmp(&b.3.likeness(&writing)))
                            .then(shared(&a.2).cmp(&shared(&b.2)))
                    })
                    .unwrap();
                if std::env::var("LIKENESS").is_ok() {
                    let best = |own: bool| {
                        (trained.iter().filter(|t| (t.0 == *lang) == own))
                            .map(|t| t.3.likeness(&writing))
                            .filter(|l| l.same_script)
                            .map(|l| l.dice)
                            .fold(f32::NAN, f32::max)
                    };
                    println!("likeness {kind} {lang} {} {}", best(true), best(false));
                }
                let own_target = record.get(lang).map(|e| e.alt.trim()).unwrap_or_default();
                for (rule, best) in [("shared tokens", by_tokens), ("writing", by_writing)] {
                    let cell = right.entry((rule, kind)).or_default();
                    cell.1 += 1;
                    cell.0 += usize::from(best.0 == *lang || best.1 == own_target);
                }
            }
        }
    }
    for ((rule, kind), (hits, total)) in right {
        println!("{rule:14} {kind:12} {hits:5} of {total:5} ({:.1}%)", 100.0 * hits as f64 / total as f64);
    }
    Ok(())
}

//! How fast a cache's saved subject index answers questions, and what it answers: for comparing two
//! versions of retrieval on one large cache (e.g. `lafn bench --cache-entries 10000 --cache-dir DIR`,
//! whose `DIR/subject-index.bin` this reads) without the model.
//!
//!     cargo run --release --example subject_search -- DIR/subject-index.bin ../shared/data/mzsre.dev.jsonl [ROUNDS]
//!     cargo run --release --example subject_search -- DIR/subject-index.bin ../shared/data/mzsre.dev.jsonl hits
//!
//! The questions are every language's `src` (most name a subject the cache holds) and `loc` (none do).
//! Timing prints the time to decode the index and the mean time per search over ROUNDS rounds (default
//! 3); `hits` instead prints every question's hits (entry, score, prompt similarity, matched subject),
//! one line each, to compare two versions' output with `cmp`.

use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::eyre;
use lafn::method::load_benchmark;
use lafn::method::retrieve::{RetrievalSettings, SubjectIndex};

fn main() -> color_eyre::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [index_file, records_file, rest @ ..] = args.as_slice() else {
        return Err(eyre!("usage: subject_search SUBJECT-INDEX.bin RECORDS.jsonl [ROUNDS | hits]"));
    };
    let started = Instant::now();
    let index = SubjectIndex::from_bytes(&std::fs::read(index_file)?, &RetrievalSettings::default())?;
    let decoded = started.elapsed();
    let records = load_benchmark(Path::new(records_file))?;
    let entries = || records.iter().flat_map(|record| record.iter().map(|(_, entry)| entry));
    let naming: Vec<&str> = entries().map(|e| e.src.as_str()).collect();
    let unrelated: Vec<&str> = entries().map(|e| e.loc.as_str()).filter(|q| !q.trim().is_empty()).collect();

    if rest.first().map(String::as_str) == Some("hits") {
        for question in naming.iter().chain(&unrelated) {
            let hits: Vec<String> = (index.search_all(question).iter())
                .map(|h| format!("{}:{:.4}:{:.4}:{}", h.entry_id, h.score, h.prompt_similarity, h.matched_subject))
                .collect();
            println!("{question}\t{}", hits.join(" | "));
        }
        return Ok(());
    }
    let rounds: usize = match rest.first() {
        Some(rounds) => rounds.parse().map_err(|_| eyre!("ROUNDS must be a number or `hits`, not {rounds}"))?,
        None => 3,
    };
    println!("decoded the index in {:.0} ms", decoded.as_secs_f64() * 1e3);
    for (kind, questions) in [("src questions", &naming), ("loc questions", &unrelated)] {
        let started = Instant::now();
        let mut hits = 0;
        for _ in 0..rounds {
            hits += questions.iter().map(|q| index.search(q).len()).sum::<usize>();
        }
        let searches = (questions.len() * rounds.max(1)) as f64;
        println!(
            "{kind} ({}): {:.3} ms a search, {:.2} entries found per search",
            questions.len(),
            started.elapsed().as_secs_f64() * 1e3 / searches,
            hits as f64 / searches
        );
    }
    Ok(())
}

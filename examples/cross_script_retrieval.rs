//! Whether a question in another language finds an edit made in English alone, by the subject as that
//! language writes it: every record of a benchmark file goes into one subject index with its English
//! subject and `src` prompt only, and each language's `src` question is searched. Retrieval matches
//! letters (respelled, romanized from Cyrillic, Greek, Armenian and Georgian) and, across scripts,
//! consonants (a name transliterated into Cyrillic, Greek, Hebrew, Arabic, Korean or Indic letters:
//! "Даррелл Спенсер", "דרל ספנסר"); a subject another language translates ("Histoire de jouets") or
//! writes in Thai or Chinese characters is found only where a prompt's words carry it. No model is
//! involved.
//!
//!     cargo run --release --example cross_script_retrieval -- ../shared/data/bmike53.dev.jsonl [OTHER]
//!
//! Prints, per language, how many questions write the subject as English does and how many of those
//! find the record's entry, the same for the questions that write it otherwise, and how many unrelated
//! `loc` questions find any entry (each such hit on stderr). With OTHER (e.g. `../shared/data/mzsre.dev.jsonl`), a large cache
//! is made of both files' records, one entry per record and language (subject and `src` in that
//! language): then every `loc` question of both files is searched, and how many find any entry (per
//! language) and the time per search are printed: false hits at scale, in every script at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::eyre;
use lafn::method::retrieve::{RetrievalSettings, SubjectIndex};
use lafn::method::{load_benchmark, BenchmarkRecord};

#[derive(Default)]
struct Counts {
    as_english: usize,
    as_english_found: usize,
    otherwise: usize,
    otherwise_found: usize,
    loc: usize,
    loc_hits: usize,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.as_english += other.as_english;
        self.as_english_found += other.as_english_found;
        self.otherwise += other.otherwise;
        self.otherwise_found += other.otherwise_found;
        self.loc += other.loc;
        self.loc_hits += other.loc_hits;
    }

    /// The table's row for `label`.
    fn row(&self, label: &str) -> String {
        let found = |part: usize, whole: usize| match whole {
            0 => format!("{part} of {whole} (-)"),
            _ => format!("{part} of {whole} ({:.0}%)", 100.0 * part as f64 / whole as f64),
        };
        format!(
            "| {label} | {} | {} | {} of {} |",
            found(self.as_english_found, self.as_english),
            found(self.otherwise_found, self.otherwise),
            self.loc_hits,
            self.loc
        )
    }
}

fn main() -> color_eyre::Result<()> {
    let file = std::env::args().nth(1).ok_or_else(|| eyre!("usage: cross_script_retrieval FILE [OTHER]"))?;
    let records = load_benchmark(Path::new(&file))?;
    if let Some(other) = std::env::args().nth(2) {
        return false_hits_at_scale(&records, &load_benchmark(Path::new(&other))?);
    }
    let mut index = SubjectIndex::new(RetrievalSettings::default());
    for (i, record) in records.iter().enumerate() {
        if let Some(en) = record.get("en") {
            index.insert(&i.to_string(), std::slice::from_ref(&en.subject), std::slice::from_ref(&en.src));
        }
    }
    let mut table: BTreeMap<&str, Counts> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        let Some(en) = record.get("en") else { continue };
        let id = i.to_string();
        for (lang, entry) in record.iter().filter(|(lang, _)| *lang != "en") {
            let counts = table.entry(lang).or_default();
            let found = index.search(&entry.src).iter().any(|hit| hit.entry_id == id);
            if entry.subject.trim() == en.subject.trim() {
                counts.as_english += 1;
                counts.as_english_found += usize::from(found);
            } else {
                counts.otherwise += 1;
                counts.otherwise_found += usize::from(found);
            }
            if !entry.loc.trim().is_empty() {
                counts.loc += 1;
                let hits = index.search(&entry.loc);
                for hit in &hits {
                    eprintln!("{lang} `loc` finds {}: {:?} named as {:?}", hit.matched_subject, entry.loc, hit.mention);
                }
                counts.loc_hits += usize::from(!hits.is_empty());
            }
        }
    }
    println!("| lang | subject as English writes it: found | written otherwise: found | unrelated questions finding an entry |");
    println!("|---|---:|---:|---:|");
    let mut sums = Counts::default();
    for (lang, counts) in &table {
        println!("{}", counts.row(lang));
        sums.add(counts);
    }
    println!("{}", sums.row("all"));
    Ok(())
}

/// Every record of both files in every language as an entry of one index; each `loc` question searched.
fn false_hits_at_scale(first: &[BenchmarkRecord], second: &[BenchmarkRecord]) -> color_eyre::Result<()> {
    let files = [first, second];
    let mut index = SubjectIndex::new(RetrievalSettings::default());
    for (file, records) in files.iter().enumerate() {
        for (i, record) in records.iter().enumerate() {
            for (lang, entry) in record.iter() {
                let id = format!("{file}-{i}-{lang}");
                index.insert(&id, std::slice::from_ref(&entry.subject), std::slice::from_ref(&entry.src));
            }
        }
    }
    let questions: Vec<(&str, &str)> = (files.iter().flat_map(|records| records.iter()))
        .flat_map(|record| record.iter().map(|(lang, entry)| (lang.as_str(), entry.loc.as_str())))
        .filter(|(_, loc)| !loc.trim().is_empty())
        .collect();
    let mut per_language: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let started = Instant::now();
    for &(lang, question) in &questions {
        let counts = per_language.entry(lang).or_default();
        counts.0 += usize::from(!index.search(question).is_empty());
        counts.1 += 1;
    }
    let per_search = started.elapsed().as_secs_f64() * 1e3 / questions.len().max(1) as f64;
    for &(lang, question) in &questions {
        for hit in index.search(question) {
            eprintln!("{lang} `loc` finds {}: {question:?} named as {:?}", hit.matched_subject, hit.mention);
        }
    }
    let entries: usize = files.iter().flat_map(|records| records.iter()).map(|record| record.iter().count()).sum();
    let hits: usize = per_language.values().map(|(hits, _)| hits).sum();
    println!(
        "{entries} entries; {} loc questions, {hits} finding an entry; {per_search:.3} ms a search",
        questions.len()
    );
    let languages: Vec<String> =
        per_language.iter().map(|(lang, (hits, all))| format!("{lang} {hits}/{all}")).collect();
    println!("{}", languages.join(", "));
    Ok(())
}

//! Whether a question in another language finds an edit made in English alone, by the subject as that
//! language writes it: every record of a benchmark file goes into one subject index with its English
//! subject and `src` prompt only, and each language's `src` question is searched. Retrieval matches
//! text (respelled, romanized from Cyrillic, Greek, Armenian and Georgian), so a subject another
//! language translates ("Histoire de jouets"), transliterates otherwise ("Мария Кюри") or writes in
//! Hebrew, Thai or Chinese letters is found only where a prompt's words carry it. No model is involved.
//!
//!     cargo run --release --example cross_script_retrieval -- ../shared/data/bmike53.dev.jsonl
//!
//! Prints, per language, how many questions write the subject as English does and how many of those
//! find the record's entry, the same for the questions that write it otherwise, and how many unrelated
//! `loc` questions find any entry.

use std::collections::BTreeMap;
use std::path::Path;

use color_eyre::eyre::eyre;
use lafn::method::load_benchmark;
use lafn::method::retrieve::{RetrievalSettings, SubjectIndex};

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
    let file = std::env::args().nth(1).ok_or_else(|| eyre!("usage: cross_script_retrieval FILE"))?;
    let records = load_benchmark(Path::new(&file))?;
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
                counts.loc_hits += usize::from(!index.search(&entry.loc).is_empty());
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

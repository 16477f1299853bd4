//! Retrieval on the dev sets. MzsRE: all records indexed at once (subjects and `src` prompts of every
//! language); each language's `src` and `rephrase` must find the record's own entry, its unrelated
//! `loc` question must find nothing. Reported for all records and for each half, so that changes tuned
//! on the first half can be checked on the second. Bi-ZsRE: records sharing a subject must be told apart.
//! BMIKE-53: the same measures over 34 languages, printed.
//!
//! Run with `cargo test --release --test retrieval_dev -- --nocapture` to see the tables.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lafn::method::retrieve::{RetrievalSettings, SubjectIndex};
use lafn::method::{load_benchmark, BenchmarkRecord};

/// Share of `src` and of `rephrase` questions that must find their own entry, in every language
/// (issue 3), except the languages in `RECALL_SHORTFALLS`.
const MIN_RECALL: f64 = 0.97;
/// Languages below `MIN_RECALL`, with the floor they reach, so that they cannot silently get worse.
/// Russian `rephrase` questions (96.7%) often use another translation of a title than both the
/// subject and the `src` prompt ("Истории игрушек" for "Игрушечная история", "Жить в одиночестве" for
/// "Жизнь в полном одиночестве"): only a dictionary would find those.
const RECALL_SHORTFALLS: &[(&str, f64)] = &[("ru", 0.965)];
/// Share of unrelated `loc` questions that may find some entry, in every language (issue 3).
const MAX_FALSE_HITS: f64 = 0.01;

/// A dev file: the whole file where `../shared` is beside the clone, else its vendored sample in
/// `tests/fixtures` (the first 20 MzsRE and 10 BMIKE-53 records; 80 Bi-ZsRE records, half of them
/// sharing a subject with another), so that every clone checks retrieval on real data.
struct DevFile {
    path: PathBuf,
    sample: bool,
}

fn data(file: &str) -> DevFile {
    match common::shared_file(&format!("data/{file}")) {
        Some(path) => DevFile { path, sample: false },
        None => {
            let sample = file.replace(".dev.jsonl", ".dev-sample.jsonl");
            DevFile {
                path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(sample),
                sample: true,
            }
        }
    }
}

/// Most failures out of `trials` that a retriever meeting a rate bound (`failure_rate`) still shows
/// with probability over 5%: on a sample of 10-20 questions per language one miss is 5-10%, so a
/// sample can only show a rate far off the bound, which this tolerance tests (binomial tail).
fn tolerated_failures(trials: usize, failure_rate: f64) -> usize {
    let probability = |k: usize| {
        let choose = (0..k).fold(1.0, |c, i| c * (trials - i) as f64 / (i + 1) as f64);
        choose * failure_rate.powi(k as i32) * (1.0 - failure_rate).powi((trials - k) as i32)
    };
    let mut tail = 1.0;
    (0..trials)
        .find(|&k| {
            tail -= probability(k);
            tail < 0.05
        })
        .unwrap_or(trials)
}

#[test]
fn sample_tolerance_follows_the_binomial_tail() {
    // 97% recall: 0 misses in 20 has probability 54%, 1 more 34%, 2 more 10%, 3 or more 2%.
    assert_eq!(tolerated_failures(20, 0.03), 2);
    assert_eq!(tolerated_failures(10, 0.03), 1);
    assert_eq!(tolerated_failures(20, 0.01), 1);
    assert_eq!(tolerated_failures(20, 0.0), 0);
}

/// Every record as one entry: id = record index, subjects and prompts (`src`) of all its languages.
fn index_of(records: &[BenchmarkRecord], settings: RetrievalSettings) -> SubjectIndex {
    let mut index = SubjectIndex::new(settings);
    for (i, record) in records.iter().enumerate() {
        let subjects: Vec<String> = record.iter().map(|(_, e)| e.subject.clone()).collect();
        let prompts: Vec<String> = record.iter().map(|(_, e)| e.src.clone()).collect();
        index.insert(&i.to_string(), &subjects, &prompts);
    }
    index
}

#[derive(Default)]
struct Counts {
    records: usize,
    src_found: usize,
    rephrase_found: usize,
    own_first: usize,
    false_hits: usize,
    /// The questions that missed their entry or hit one they should not, for the failure message.
    failures: Vec<String>,
}

impl Counts {
    fn rate(&self, count: usize) -> f64 {
        count as f64 / self.records as f64
    }
    fn recall_src(&self) -> f64 {
        self.rate(self.src_found)
    }
    fn recall_rephrase(&self) -> f64 {
        self.rate(self.rephrase_found)
    }
    /// Own entry ranked first, over `src` and `rephrase` questions.
    fn top1(&self) -> f64 {
        self.own_first as f64 / (2 * self.records) as f64
    }
    fn false_hit_rate(&self) -> f64 {
        self.rate(self.false_hits)
    }
}

struct Timing {
    searches: u32,
    total: Duration,
    slowest: Duration,
}

/// Per-language counts over the records in `range` (the index holds all records).
fn measure(
    index: &SubjectIndex,
    records: &[BenchmarkRecord],
    range: std::ops::Range<usize>,
) -> (BTreeMap<String, Counts>, Timing) {
    let mut table: BTreeMap<String, Counts> = BTreeMap::new();
    let mut timing = Timing { searches: 0, total: Duration::ZERO, slowest: Duration::ZERO };
    let mut search = |query: &str| {
        let started = Instant::now();
        let hits = index.search(query);
        let took = started.elapsed();
        timing.searches += 1;
        timing.total += took;
        timing.slowest = timing.slowest.max(took);
        hits
    };
    for i in range {
        let id = i.to_string();
        for (lang, entry) in records[i].iter() {
            let counts = table.entry(lang.clone()).or_default();
            counts.records += 1;
            let src_hits = search(&entry.src);
            let rephrase_hits = search(&entry.rephrase);
            for (kind, question, hits) in
                [("src", &entry.src, &src_hits), ("rephrase", &entry.rephrase, &rephrase_hits)]
            {
                let found = hits.iter().any(|h| h.entry_id == id);
                if kind == "src" {
                    counts.src_found += usize::from(found);
                } else {
                    counts.rephrase_found += usize::from(found);
                }
                if !found {
                    counts.failures.push(format!(
                        "{lang} {kind} of record {i} missed: {question:?} (subject {:?})",
                        entry.subject
                    ));
                }
                counts.own_first += usize::from(hits.first().is_some_and(|h| h.entry_id == id));
            }
            if !search(&entry.loc).is_empty() {
                counts.false_hits += 1;
                counts.failures.push(format!("{lang} loc of record {i} hit an entry: {:?}", entry.loc));
            }
        }
    }
    (table, timing)
}

fn percent(share: f64) -> String {
    format!("{:5.1}%", 100.0 * share)
}

/// Indexes every record of a dev file at once and prints each language's recall and false hits.
fn print_recall_table(name: &str, index: &SubjectIndex, records: &[BenchmarkRecord]) -> BTreeMap<String, Counts> {
    let (table, timing) = measure(index, records, 0..records.len());
    println!("{name}: {} records", records.len());
    println!("lang  recall src  recall rephrase  top-1   false hits (loc)");
    for (lang, c) in &table {
        println!(
            "{lang:4}  {}      {}           {}  {}",
            percent(c.recall_src()),
            percent(c.recall_rephrase()),
            percent(c.top1()),
            percent(c.false_hit_rate())
        );
    }
    println!(
        "{} searches: {:?} per query on average, slowest {:?}",
        timing.searches,
        timing.total / timing.searches,
        timing.slowest
    );
    table
}

#[test]
fn mzsre_recall_and_false_hits_per_language() {
    let file = data("mzsre.dev.jsonl");
    let records = load_benchmark(&file.path).unwrap();
    let started = Instant::now();
    let index = index_of(&records, RetrievalSettings::default());
    println!("MzsRE indexed in {:?}", started.elapsed());
    let table = print_recall_table("MzsRE", &index, &records);

    let half = records.len() / 2;
    let (first, _) = measure(&index, &records, 0..half);
    let (second, _) = measure(&index, &records, half..records.len());
    println!("halves (records 0..{half} | {half}..{}): recall src, recall rephrase, false hits", records.len());
    for (lang, a) in &first {
        let b = &second[lang];
        println!(
            "{lang:4}  {} {} {}  |  {} {} {}",
            percent(a.recall_src()),
            percent(a.recall_rephrase()),
            percent(a.false_hit_rate()),
            percent(b.recall_src()),
            percent(b.recall_rephrase()),
            percent(b.false_hit_rate())
        );
    }

    // `src` questions are the indexed prompts themselves: how far the subjects alone go shows how
    // well questions worded unlike any prompt are found.
    let subjects_only = index_of(&records, RetrievalSettings { match_prompts: false, ..RetrievalSettings::default() });
    let (by_subjects, _) = measure(&subjects_only, &records, 0..records.len());
    println!("subjects only (prompts not matched): recall src, recall rephrase, false hits");
    for (lang, c) in &by_subjects {
        println!(
            "{lang:4}  {} {} {}",
            percent(c.recall_src()),
            percent(c.recall_rephrase()),
            percent(c.false_hit_rate())
        );
    }

    assert_targets_met(&table, file.sample, RECALL_SHORTFALLS, &[]);
}

/// Every language reaches `MIN_RECALL` and `MAX_FALSE_HITS`, or the floor and ceiling its shortfalls
/// list; on a sample, within the failures a retriever at those rates shows by chance.
fn assert_targets_met(
    table: &BTreeMap<String, Counts>,
    sample: bool,
    recall_shortfalls: &[(&str, f64)],
    false_hit_shortfalls: &[(&str, f64)],
) {
    let limit = |shortfalls: &[(&str, f64)], lang: &str, target: f64| {
        shortfalls.iter().find(|(l, _)| *l == lang).map_or(target, |&(_, limit)| limit)
    };
    let chance = |records: usize, failure_rate: f64| {
        if sample {
            tolerated_failures(records, failure_rate) as f64 / records as f64
        } else {
            0.0
        }
    };
    let below: Vec<(&String, &Counts)> = table
        .iter()
        .filter(|(lang, c)| {
            let recall = limit(recall_shortfalls, lang, MIN_RECALL);
            let floor = recall - chance(c.records, 1.0 - recall);
            let false_hits = limit(false_hit_shortfalls, lang, MAX_FALSE_HITS);
            let ceiling = false_hits + chance(c.records, false_hits);
            c.recall_src() < floor || c.recall_rephrase() < floor || c.false_hit_rate() > ceiling
        })
        .collect();
    assert!(
        below.is_empty(),
        "below target (recall >= {} or the shortfall floor, false hits <= {} or the shortfall ceiling) in {:?}:\n{}",
        percent(MIN_RECALL),
        percent(MAX_FALSE_HITS),
        below.iter().map(|(lang, _)| lang).collect::<Vec<_>>(),
        below.iter().flat_map(|(_, c)| &c.failures).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn bizsre_same_subject_entries_are_told_apart() {
    let records = load_benchmark(&data("bizsre.dev.jsonl").path).unwrap();
    let index = index_of(&records, RetrievalSettings::default());
    let (mut queries, mut found, mut own_first, mut loc, mut false_hits) = (0, 0, 0, 0, 0);
    for (i, record) in records.iter().enumerate() {
        let id = i.to_string();
        for (_, entry) in record.iter() {
            for query in [&entry.src, &entry.rephrase] {
                queries += 1;
                found += usize::from(index.search_all(query).iter().any(|h| h.entry_id == id));
                own_first += usize::from(index.search(query).first().is_some_and(|h| h.entry_id == id));
            }
            loc += 1;
            false_hits += usize::from(!index.search(&entry.loc).is_empty());
        }
    }
    let share = |count: usize, of: usize| count as f64 / of as f64;
    println!(
        "Bi-ZsRE ({} records, {queries} questions): own entry among the hits {}, ranked first {}, \
         false hits on loc {}",
        records.len(),
        percent(share(found, queries)),
        percent(share(own_first, queries)),
        percent(share(false_hits, loc))
    );
    assert!(share(found, queries) >= MIN_RECALL);
    assert!(share(false_hits, loc) <= MAX_FALSE_HITS);
    // Several records share both subject and relation (the same question asked twice with different
    // targets), so ranking the own entry first cannot always succeed.
    assert!(share(own_first, queries) >= 0.8, "own entry first for only {}", percent(share(own_first, queries)));
}

/// BMIKE-53's dev facts in 34 languages, one index holding all (issue 13).
#[test]
fn bmike53_recall_and_false_hits_per_language() {
    let file = data("bmike53.dev.jsonl");
    let records = load_benchmark(&file.path).unwrap();
    let index = index_of(&records, RetrievalSettings::default());
    let table = print_recall_table("BMIKE-53", &index, &records);
    assert_targets_met(&table, file.sample, &[], &[]);
}

/// Time per query with 10,000 entries in one index: one entry per language of each BMIKE-53 dev fact
/// (its subject and `src` prompt in that language), numbered copies added if there are fewer. Printed,
/// not asserted (the target is under 1 ms on one core): timing depends on the machine.
#[test]
fn query_time_with_ten_thousand_entries() {
    const ENTRIES: usize = 10_000;
    let records = load_benchmark(&data("bmike53.dev.jsonl").path).unwrap();
    let facts: Vec<(&str, &str)> =
        records.iter().flat_map(|r| r.iter().map(|(_, e)| (e.subject.as_str(), e.src.as_str()))).collect();
    let mut index = SubjectIndex::new(RetrievalSettings::default());
    let started = Instant::now();
    for n in 0..ENTRIES {
        let (subject, prompt) = facts[n % facts.len()];
        let copy = n / facts.len();
        let (subject, prompt) = if copy == 0 {
            (subject.to_string(), prompt.to_string())
        } else {
            (format!("{subject} {copy}"), format!("{prompt} {copy}"))
        };
        index.insert(&n.to_string(), &[subject], &[prompt]);
    }
    let indexed = started.elapsed();
    let queries: Vec<&str> = records
        .iter()
        .flat_map(|r| r.iter().flat_map(|(_, e)| [e.src.as_str(), e.rephrase.as_str(), e.loc.as_str()]))
        .collect();
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|query| {
            let started = Instant::now();
            std::hint::black_box(index.search(query));
            started.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{ENTRIES} entries indexed in {indexed:?}; {} queries (src, rephrase, loc of every language): \
         mean {mean:?}, median {:?}, 99th percentile {:?}, slowest {:?} per query",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
}

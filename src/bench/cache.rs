//! What a large edit cache costs (`lafn bench --cache-entries N`): opening and indexing it, retrieval
//! per query, chat's first-token latency against an empty cache, and resident memory.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::bail;

use super::{median_time, ms};
use crate::method::apply::{answer, AnswerOptions, CachedEdits};
use crate::method::cache::synthetic::{fill_cache, synthetic_groups};
use crate::method::cache::{EditCache, MemoryStore};
use crate::method::scope::QuestionEncoder;
use crate::method::{load_benchmark, MethodSettings};
use crate::runtime::LoadedModel;
use crate::Result;

/// Questions timed per kind (naming an entry's subject, or none).
const QUERIES: usize = 100;

/// Builds (or tops up) a cache of `entries` synthetic entries in `dir` from the records of
/// `records_file`, then measures it; returns a printable report.
pub fn run(loaded: &LoadedModel, records_file: &Path, entries: usize, dir: &Path) -> Result<String> {
    let records = load_benchmark(records_file)?;
    if records.is_empty() || entries == 0 {
        bail!("--cache-entries needs at least one entry and a --group file with records");
    }
    let mut report = String::new();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let fingerprint = &loaded.info.fingerprint;
    let settings = MethodSettings::default();
    let groups = synthetic_groups(&records, entries)?;

    let mut cache = EditCache::open(dir, fingerprint)?;
    if cache.list().len() < entries {
        let started = Instant::now();
        let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
        fill_cache(&mut cache, &groups, model.config(), &encoder, &mut |n| {
            if n % 1000 == 0 {
                eprintln!("stored {n} of {entries} entries");
            }
        })?;
        writeln!(report, "built {entries} entries in {}: {:.1} s", dir.display(), started.elapsed().as_secs_f64())?;
    }
    drop(cache);

    let resident_before = resident_mb();
    let started = Instant::now();
    let cache = EditCache::open(dir, fingerprint)?;
    let opened = started.elapsed();
    let listed = cache.list().len();
    let mut cached = CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())?;
    let indexed = started.elapsed() - opened;
    writeln!(
        report,
        "open {listed} entries: {:.0} ms (index.json {:.0} ms, subject index {:.0} ms), resident memory +{:.0} MB",
        ms(opened + indexed),
        ms(opened),
        ms(indexed),
        resident_mb() - resident_before
    )?;

    // Questions that name an entry's subject (its prompts) and questions that name none (`loc`).
    let step = (groups.len() / QUERIES).max(1);
    let naming: Vec<&str> =
        groups.iter().step_by(step).take(QUERIES).map(|g| g.descriptors[0].prompt.as_str()).collect();
    let unrelated: Vec<&str> =
        records.iter().flat_map(|r| r.iter().map(|(_, e)| e.loc.as_str())).step_by(7).take(QUERIES).collect();
    for (kind, queries) in [("naming a subject", &naming), ("naming none", &unrelated)] {
        let (mut search, mut retrieve, mut hits) = (Duration::ZERO, Duration::ZERO, 0);
        for query in queries.iter() {
            let started = Instant::now();
            hits += cached.mentioned(query).len();
            search += started.elapsed();
            let started = Instant::now();
            cached.retrieve(model, tokenizer, query)?;
            retrieve += started.elapsed();
        }
        let n = queries.len() as u32;
        writeln!(
            report,
            "retrieval, {} questions {kind}: subject search {:.3} ms/query ({:.1} entries named per query), \
             with scope scores and update values {:.1} ms/query",
            n,
            ms(search / n),
            hits as f64 / n as f64,
            ms(retrieve / n)
        )?;
    }

    // Chat's first token: the same question with this cache, with a cache of only the entry it names
    // (what the scope gate costs at any size), and with an empty one.
    let options = AnswerOptions::chat(1);
    let one_dir = tempfile::tempdir()?;
    let mut first_entry = EditCache::open(one_dir.path(), fingerprint)?;
    let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
    fill_cache(&mut first_entry, &groups[..1], model.config(), &encoder, &mut |_| {})?;
    let mut one = CachedEdits::new(first_entry, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())?;
    let mut empty =
        CachedEdits::new(MemoryStore::new(fingerprint), model, tokenizer, settings.retrieval.clone(), settings.scope)?;
    for (kind, query) in [("naming a subject", naming[0]), ("naming none", unrelated[0])] {
        let first_token = |cached: &mut CachedEdits| -> Result<Duration> {
            median_time(5, || {
                let started = Instant::now();
                answer(model, tokenizer, Some(&mut *cached), query, &options, &mut |_| true)?;
                Ok(started.elapsed())
            })
        };
        let (large, single, small) = (first_token(&mut cached)?, first_token(&mut one)?, first_token(&mut empty)?);
        let over = |time: Duration| 100.0 * (time.as_secs_f64() / small.as_secs_f64() - 1.0);
        writeln!(
            report,
            "chat first token, question {kind}: {:.1} ms with {listed} entries ({:+.0}%), {:.1} ms with only the first \
             entry ({:+.0}%), {:.1} ms with an empty cache",
            ms(large),
            over(large),
            ms(single),
            over(single),
            ms(small)
        )?;
    }
    Ok(report)
}

/// Resident memory of this process now, from /proc (0 where unavailable).
fn resident_mb() -> f64 {
    super::proc_status_mb("VmRSS:")
}

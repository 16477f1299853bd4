//! The benchmarks and their files: MzsRE, Bi-ZsRE and BMIKE-53 as JSONL (one fact per line, language
//! -> entry), or BMIKE-53 in its own layout, a directory of `zsre_test_{lang}.json` files each pairing
//! `en` with one language, merged here by `case_id`. Which requested languages each record lacks is
//! worked out once, so that a run can report it instead of dropping them unseen.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::method::group::Portability;
use crate::method::{load_benchmark, BenchmarkEntry, BenchmarkRecord};
use crate::Result;

/// The benchmarks, named `mzsre`, `bizsre` and `bmike53` on the command line and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    Mzsre,
    Bizsre,
    Bmike53,
}

impl Dataset {
    /// The languages of the benchmark (the language table's `[datasets]`), evaluated when no others
    /// are asked for.
    pub fn languages(self) -> &'static [String] {
        crate::text::languages::dataset_languages(&self.to_string())
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_possible_value().expect("no dataset is skipped").get_name())
    }
}

/// The records of a benchmark: a JSONL file, or a directory in BMIKE-53's layout.
pub fn load_records(path: &Path) -> Result<Vec<BenchmarkRecord>> {
    if path.is_dir() {
        load_pairwise_directory(path)
    } else {
        load_benchmark(path)
    }
}

/// One language's block in a BMIKE-53 file: MzsRE's fields, with portability as `port` / `port_ans`.
#[derive(Deserialize)]
struct PairwiseBlock {
    case_id: u64,
    subject: String,
    src: String,
    rephrase: String,
    alt: String,
    loc: String,
    loc_ans: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    port_ans: String,
}

impl From<PairwiseBlock> for BenchmarkEntry {
    fn from(b: PairwiseBlock) -> Self {
        let portability = Portability { question: b.port, answer: b.port_ans };
        BenchmarkEntry {
            subject: b.subject,
            src: b.src,
            rephrase: b.rephrase,
            alt: b.alt,
            loc: b.loc,
            loc_ans: b.loc_ans,
            portability,
        }
    }
}

/// The file name prefix of BMIKE-53's zsRE test files: `zsre_test_{lang}.json`.
const PAIRWISE_PREFIX: &str = "zsre_test_";

/// Reads a directory of `zsre_test_{lang}.json` files (each a JSON array of objects `en` -> block,
/// `{lang}` -> block, blocks carrying `case_id`) into one record per `case_id`, in `case_id` order,
/// English first and the other languages in file-name order. A block lacking a field is left out,
/// as the merged file leaves it out, and said so in a warning.
fn load_pairwise_directory(dir: &Path) -> Result<Vec<BenchmarkRecord>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .wrap_err_with(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PAIRWISE_PREFIX)))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no {PAIRWISE_PREFIX}{{lang}}.json files (BMIKE-53's layout)", dir.display());
    }
    let mut cases: BTreeMap<u64, Vec<(String, BenchmarkEntry)>> = BTreeMap::new();
    let mut incomplete: Vec<String> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).wrap_err_with(|| format!("cannot read {}", file.display()))?;
        let pairs: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&text)
            .wrap_err_with(|| format!("{}: not a JSON array of language -> entry objects", file.display()))?;
        for (position, pair) in pairs.into_iter().enumerate() {
            let at = || format!("{} item {}", file.display(), position + 1);
            let mut case_id = None;
            for (lang, block) in pair {
                let id = block.get("case_id").and_then(serde_json::Value::as_u64);
                let id = id.ok_or_else(|| eyre!("{}, language `{lang}`: no numeric case_id", at()))?;
                if *case_id.get_or_insert(id) != id {
                    bail!("{}: the languages have different case_ids", at());
                }
                let Ok(block) = serde_json::from_value::<PairwiseBlock>(block) else {
                    incomplete.push(format!("case {id} `{lang}`"));
                    continue;
                };
                let languages = cases.entry(block.case_id).or_default();
                // English comes with every language: the first copy is kept.
                if !languages.iter().any(|(l, _)| *l == lang) {
                    languages.push((lang, block.into()));
                }
            }
        }
    }
    if !incomplete.is_empty() {
        log::warn!(
            "{}: {} language blocks lack a field and are left out: {}",
            dir.display(),
            incomplete.len(),
            incomplete.join(", ")
        );
    }
    let records: Vec<BenchmarkRecord> = cases
        .into_values()
        .map(|mut languages| {
            // Stable: the other languages keep their file order.
            languages.sort_by_key(|(lang, _)| lang != "en");
            BenchmarkRecord(languages)
        })
        .collect();
    if records.is_empty() {
        bail!("{} holds no complete record", dir.display());
    }
    Ok(records)
}

/// Which of the requested languages the records have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LanguageCoverage {
    /// The requested languages at least one record has, in the order first asked: the run's languages.
    pub present: Vec<String>,
    /// Requested language -> the records (numbered from 1) that lack it; languages no record lacks
    /// are not listed.
    pub missing: BTreeMap<String, Vec<usize>>,
}

impl LanguageCoverage {
    pub fn of(records: &[BenchmarkRecord], requested: &[String]) -> Self {
        let mut coverage = Self::default();
        for (i, lang) in requested.iter().enumerate() {
            if requested[..i].contains(lang) {
                continue;
            }
            let lacking: Vec<usize> =
                (0..records.len()).filter(|&i| records[i].get(lang).is_none()).map(|i| i + 1).collect();
            if lacking.len() < records.len() {
                coverage.present.push(lang.clone());
            }
            if !lacking.is_empty() {
                coverage.missing.insert(lang.clone(), lacking);
            }
        }
        coverage
    }

    /// One line per language some records lack: how many of `total`, and which.
    pub fn describe(missing: &BTreeMap<String, Vec<usize>>, total: usize) -> Vec<String> {
        missing
            .iter()
            .map(|(lang, records)| {
                if records.len() == total {
                    format!("`{lang}`: in no record (left out)")
                } else {
                    format!("`{lang}`: missing from {} of {total} records: {}", records.len(), ranges(records))
                }
            })
            .collect()
    }
}

/// Record numbers as ranges: "1-3, 7".
fn ranges(numbers: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 0..numbers.len() {
        if i + 1 == numbers.len() || numbers[i + 1] != numbers[i] + 1 {
            parts.push(if start == i { numbers[i].to_string() } else { format!("{}-{}", numbers[start], numbers[i]) });
            start = i + 1;
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn bmike53_directory_and_merged_file_give_the_same_records() {
        let merged = load_records(&fixture("bmike53.sample.jsonl")).unwrap();
        let directory = load_records(&fixture("bmike53")).unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(directory, merged);
        // The third fact has no Hebrew block: its record lacks the language.
        assert!(directory[2].get("he").is_none() && directory[2].get("ru").is_some());
    }

    #[test]
    fn a_block_lacking_a_field_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let block = |lang: &str, loc: Option<&str>| {
            let mut block = serde_json::json!({"case_id": 7, "subject": "S", "src": format!("{lang} q"),
                "rephrase": "r", "alt": "a", "loc_ans": "l", "port": "p", "port_ans": "pa"});
            if let Some(loc) = loc {
                block["loc"] = loc.into();
            }
            block
        };
        let file = serde_json::json!([{"en": block("en", Some("l")), "el": block("el", None)}]);
        std::fs::write(dir.path().join("zsre_test_el.json"), file.to_string()).unwrap();
        let records = load_records(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["en"]);
        assert_eq!(records[0].get("en").unwrap().portability.answer, "pa");
    }

    #[test]
    fn a_directory_without_bmike53_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_records(dir.path()).unwrap_err();
        assert!(format!("{err}").contains("zsre_test_"), "{err}");
    }

    #[test]
    fn missing_languages_are_counted_per_record() {
        let records = load_records(&fixture("bmike53.sample.jsonl")).unwrap();
        let requested: Vec<String> = ["en", "he", "ko", "en"].map(String::from).to_vec();
        let coverage = LanguageCoverage::of(&records, &requested);
        assert_eq!(coverage.present, ["en", "he"]);
        assert_eq!(coverage.missing, BTreeMap::from([("he".into(), vec![3]), ("ko".into(), vec![1, 2, 3])]));
        let lines = LanguageCoverage::describe(&coverage.missing, records.len());
        assert_eq!(lines, ["`he`: missing from 1 of 3 records: 3", "`ko`: in no record (left out)"]);
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
    }
}

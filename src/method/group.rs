//! Edit groups: one fact in several languages, loadable from our JSON/JSONL or the MzsRE/Bi-ZsRE format.

use std::path::Path;

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::Result;

/// One fact in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditDescriptor {
    /// Language code as the data uses it (en, zh, cz, du, ...).
    pub lang: String,
    pub subject: String,
    pub prompt: String,
    pub target: String,
    /// Other phrasings of `prompt` used for locating; never a benchmark's `rephrase` field.
    #[serde(default)]
    pub paraphrases: Vec<String>,
    /// Other names of the subject that should also trigger this edit.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// The same fact in several languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditGroup {
    pub name: String,
    pub descriptors: Vec<EditDescriptor>,
}

/// One language block of an MzsRE / Bi-ZsRE record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchmarkEntry {
    pub subject: String,
    pub src: String,
    pub rephrase: String,
    pub alt: String,
    pub loc: String,
    pub loc_ans: String,
    pub portability: Portability,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portability {
    #[serde(rename = "New Question")]
    pub question: String,
    #[serde(rename = "New Answer")]
    pub answer: String,
}

/// Longest text we accept in one field: far beyond any real prompt, small enough to stay responsive.
pub const MAX_FIELD_CHARS: usize = 4096;

impl EditGroup {
    /// Builds the edit group of a benchmark record: prompt `src`, target `alt`, no paraphrases yet.
    pub fn from_benchmark(name: &str, record: &BenchmarkRecord, langs: Option<&[String]>) -> Result<Self> {
        let descriptors: Vec<EditDescriptor> = record
            .iter()
            .filter(|(lang, _)| langs.is_none_or(|l| l.iter().any(|x| x == *lang)))
            .map(|(lang, e)| EditDescriptor {
                lang: lang.clone(),
                subject: e.subject.clone(),
                prompt: e.src.clone(),
                target: e.alt.clone(),
                paraphrases: Vec::new(),
                aliases: Vec::new(),
            })
            .collect();
        let group = Self { name: name.to_string(), descriptors };
        group.validate()?;
        Ok(group)
    }

    /// Checks that every field a method needs is present and of sane size.
    pub fn validate(&self) -> Result<()> {
        if self.descriptors.is_empty() {
            bail!("edit group `{}` has no languages", self.name);
        }
        for d in &self.descriptors {
            for (field, value) in [("subject", &d.subject), ("prompt", &d.prompt), ("target", &d.target)] {
                if value.trim().is_empty() {
                    bail!("edit group `{}`, language {}: the {field} is empty", self.name, d.lang);
                }
            }
            let fields = [&d.subject, &d.prompt, &d.target].into_iter().chain(&d.paraphrases).chain(&d.aliases);
            for value in fields {
                if value.chars().count() > MAX_FIELD_CHARS {
                    bail!(
                        "edit group `{}`, language {}: a field has {} characters (at most {MAX_FIELD_CHARS})",
                        self.name,
                        d.lang,
                        value.chars().count()
                    );
                }
            }
        }
        Ok(())
    }

    /// Every subject name of the group, in all languages, with aliases, without duplicates.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = Vec::new();
        for d in &self.descriptors {
            for s in std::iter::once(&d.subject).chain(&d.aliases) {
                let s = s.trim();
                if !s.is_empty() && !subjects.iter().any(|x| x == s) {
                    subjects.push(s.to_string());
                }
            }
        }
        subjects
    }

    pub fn langs(&self) -> Vec<&str> {
        self.descriptors.iter().map(|d| d.lang.as_str()).collect()
    }

    /// Loads edit groups from a JSON file (one group, a list of groups, or one benchmark record)
    /// or a JSONL file (one group or benchmark record per line).
    pub fn load_file(path: &Path) -> Result<Vec<Self>> {
        let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
        let stem = path.file_stem().map_or("group".into(), |s| s.to_string_lossy().into_owned());
        let trimmed = text.trim_start();
        let values: Vec<serde_json::Value> = if trimmed.starts_with('[') {
            serde_json::from_str(trimmed).wrap_err_with(|| format!("{} is not valid JSON", path.display()))?
        } else if let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) {
            vec![value]
        } else {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    serde_json::from_str(l)
                        .wrap_err_with(|| format!("{} line {}: not valid JSON", path.display(), i + 1))
                })
                .collect::<Result<_>>()?
        };
        if values.is_empty() {
            bail!("{} holds no edit groups", path.display());
        }
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Self::from_json(v, &format!("{stem}-{}", i + 1)))
            .collect::<Result<_>>()
            .wrap_err_with(|| format!("reading edit groups from {}", path.display()))
    }

    /// Parses our own group format or a benchmark record.
    pub fn from_json(value: serde_json::Value, default_name: &str) -> Result<Self> {
        if value.get("descriptors").is_some() {
            let group: Self = serde_json::from_value(value).wrap_err("not a valid edit group")?;
            group.validate()?;
            return Ok(group);
        }
        let record = BenchmarkRecord::from_json(value)?;
        let name = record.iter().next().map_or(default_name.to_string(), |(_, e)| e.subject.clone());
        Self::from_benchmark(&name, &record, None)
    }
}

/// An MzsRE / Bi-ZsRE record: language code -> entry, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BenchmarkRecord(pub Vec<(String, BenchmarkEntry)>);

impl BenchmarkRecord {
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let object = value.as_object().ok_or_else(|| eyre!("expected an object of language -> entry"))?;
        let entries = object
            .iter()
            .map(|(lang, entry)| {
                let entry: BenchmarkEntry = serde_json::from_value(entry.clone())
                    .wrap_err_with(|| format!("language `{lang}` is not a benchmark entry"))?;
                Ok((lang.clone(), entry))
            })
            .collect::<Result<Vec<_>>>()?;
        if entries.is_empty() {
            bail!("the record has no languages");
        }
        Ok(Self(entries))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &BenchmarkEntry)> {
        self.0.iter().map(|(l, e)| (l, e))
    }

    pub fn get(&self, lang: &str) -> Option<&BenchmarkEntry> {
        self.0.iter().find(|(l, _)| l == lang).map(|(_, e)| e)
    }
}

/// Reads a benchmark JSONL file (MzsRE or Bi-ZsRE).
pub fn load_benchmark(path: &Path) -> Result<Vec<BenchmarkRecord>> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let value: serde_json::Value = serde_json::from_str(line)
                .wrap_err_with(|| format!("{} line {}: not valid JSON", path.display(), i + 1))?;
            BenchmarkRecord::from_json(value).wrap_err_with(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

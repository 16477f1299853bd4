//! Edit groups: one fact in several languages, loadable from our JSON/JSONL or the MzsRE/Bi-ZsRE format.

use std::path::Path;

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::runtime::Tokenizer;
use crate::text::scripts::is_completion;
use crate::Result;

/// One fact in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditDescriptor {
    /// Language code as the data uses it (en, zh, cz, du, ...).
    pub lang: String,
    pub subject: String,
    pub prompt: String,
    pub target: String,
    /// Other phrasings of `prompt`, as the user wrote them (never a benchmark's `rephrase` field): the
    /// edit is trained to answer them too, and they count for locating and for the edit's scope. A
    /// completion-style prompt ("Marie Curie was born in the city of") is answered in question form
    /// ("Where was Marie Curie born?") only when a question is among them.
    #[serde(default)]
    pub paraphrases: Vec<String>,
    /// Paraphrases made to fill up to the settings' count (`prompts::fill_paraphrases`): they count for
    /// locating and for the scope, but are trained on only with `edit.train_on_paraphrases`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_paraphrases: Vec<String>,
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

/// Longest text we accept in one field before tokenizing it: a cheap guard against runaway files. The
/// bound that matters is in tokens, against the model ([`EditGroup::check_token_lengths`]).
pub const MAX_FIELD_CHARS: usize = 65_536;

impl EditDescriptor {
    /// The paraphrases the user wrote, blank ones left out.
    pub fn written_paraphrases(&self) -> impl Iterator<Item = &str> {
        self.paraphrases.iter().map(|p| p.trim()).filter(|p| !p.is_empty())
    }

    /// Whether the edit is trained on sentences to complete only ("Marie Curie was born in the city
    /// of", no question written among the paraphrases): it then answers that sentence, not reliably
    /// the questions users ask ("Where was Marie Curie born?" keeps its unedited answer).
    pub fn trains_no_question(&self) -> bool {
        is_completion(&self.prompt) && self.written_paraphrases().all(is_completion)
    }

    /// The written paraphrases, then the generated ones.
    pub fn all_paraphrases(&self) -> impl Iterator<Item = &str> {
        self.written_paraphrases().chain(self.generated_paraphrases.iter().map(String::as_str))
    }

    /// Every text field with its name as messages give it: subject, prompt, target, paraphrases, aliases.
    fn named_fields(&self) -> impl Iterator<Item = (String, &str)> {
        let fixed = [("subject", &self.subject), ("prompt", &self.prompt), ("target", &self.target)];
        fixed
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.as_str()))
            .chain(numbered("paraphrase", &self.paraphrases))
            .chain(numbered("alias", &self.aliases))
    }
}

/// `values` named `kind 1`, `kind 2`, ...
fn numbered<'a>(kind: &'static str, values: &'a [String]) -> impl Iterator<Item = (String, &'a str)> {
    values.iter().enumerate().map(move |(i, v)| (format!("{kind} {}", i + 1), v.as_str()))
}

impl EditGroup {
    /// Builds the edit group of a benchmark record: prompt `src`, target `alt`, no paraphrases yet.
    pub fn from_benchmark(name: &str, record: &BenchmarkRecord, langs: Option<&[String]>) -> Result<Self> {
        let group = Self::from_benchmark_unchecked(name, record, langs);
        group.validate()?;
        Ok(group)
    }

    fn from_benchmark_unchecked(name: &str, record: &BenchmarkRecord, langs: Option<&[String]>) -> Self {
        let descriptors: Vec<EditDescriptor> = record
            .iter()
            .filter(|(lang, _)| langs.is_none_or(|l| l.iter().any(|x| x == *lang)))
            .map(|(lang, e)| EditDescriptor {
                lang: lang.clone(),
                subject: e.subject.clone(),
                prompt: e.src.clone(),
                target: e.alt.clone(),
                paraphrases: Vec::new(),
                generated_paraphrases: Vec::new(),
                aliases: Vec::new(),
            })
            .collect();
        Self { name: name.to_string(), descriptors }
    }

    /// Checks that every field a method needs is present and of sane size, and that each language
    /// has one target.
    pub fn validate(&self) -> Result<()> {
        if self.descriptors.is_empty() {
            bail!("edit group `{}` has no languages", self.name);
        }
        for (i, d) in self.descriptors.iter().enumerate() {
            for (field, value) in [("subject", &d.subject), ("prompt", &d.prompt), ("target", &d.target)] {
                if value.trim().is_empty() {
                    bail!("edit group `{}`, language {}: the {field} is empty", self.name, d.lang);
                }
            }
            for (field, value) in d.named_fields() {
                let chars = value.chars().count();
                if chars > MAX_FIELD_CHARS {
                    bail!(
                        "edit group `{}`, language {}: the {field} has {chars} characters (at most {MAX_FIELD_CHARS})",
                        self.name,
                        d.lang,
                    );
                }
            }
            // One fact has one target per language: which of two would the edit teach?
            let earlier = self.descriptors[..i].iter().find(|e| e.lang == d.lang && e.target.trim() != d.target.trim());
            if let Some(earlier) = earlier {
                bail!(
                    "edit group `{}` has two blocks of language {} with different targets (`{}` and `{}`): give one",
                    self.name,
                    d.lang,
                    earlier.target.trim(),
                    d.target.trim()
                );
            }
        }
        Ok(())
    }

    /// Refuses the group when any of its fields takes more than `limit` tokens (see
    /// [`crate::runtime::ModelConfig::max_input_tokens`]), naming the field, its length and the limit.
    pub fn check_token_lengths(&self, tokenizer: &Tokenizer, limit: usize) -> Result<()> {
        for d in &self.descriptors {
            for (field, value) in d.named_fields() {
                tokenizer.check_length(
                    &format!("edit group `{}`, language {}: the {field}", self.name, d.lang),
                    value,
                    limit,
                )?;
            }
        }
        Ok(())
    }

    /// Keeps only the languages `langs`; a language asked for but absent is an error, not dropped.
    pub fn keep_langs(&mut self, langs: &[String]) -> Result<()> {
        if let Some(missing) = langs.iter().find(|l| !self.descriptors.iter().any(|d| &d.lang == *l)) {
            bail!("group `{}` has no language `{missing}` (it has {})", self.name, self.langs().join(", "));
        }
        self.descriptors.retain(|d| langs.contains(&d.lang));
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

    /// Whether both groups state the same facts: their descriptors (languages, subjects, prompts, targets,
    /// paraphrases, aliases), which is what located neurons and update values are computed from. The
    /// name is a label: renaming a group leaves its edit valid.
    pub fn same_facts(&self, other: &EditGroup) -> bool {
        self.descriptors == other.descriptors
    }

    /// Loads edit groups from a JSON file (one group, a list of groups, or one benchmark record)
    /// or a JSONL file (one group or benchmark record per line).
    pub fn load_file(path: &Path) -> Result<Vec<Self>> {
        let groups = Self::parse_file(path)?;
        let checked = groups.into_iter().map(|group| {
            let group = group?;
            group.validate().wrap_err_with(|| format!("reading edit groups from {}", path.display()))?;
            Ok(group)
        });
        checked.collect()
    }

    /// Every group of a file, with only the languages `langs` when given, each read and checked on its
    /// own: a group that is not valid is an error in its place and leaves the others usable (a bulk edit
    /// reports it and goes on). The outer error is the file's: unreadable, or no groups at all.
    pub fn load_each(path: &Path, langs: Option<&[String]>) -> Result<Vec<Result<Self>>> {
        let groups = Self::parse_file(path)?;
        Ok(groups.into_iter().map(|group| group.and_then(|group| group.choose_langs(langs))).collect())
    }

    /// Group `index` (1 = the first) of a file, with only the languages `langs` when given. Only that
    /// group is checked, after the languages are chosen: a language left out cannot reject it.
    pub fn load_one(path: &Path, index: usize, langs: Option<&[String]>) -> Result<Self> {
        let groups = Self::parse_file(path)?;
        let count = groups.len();
        let group = index.checked_sub(1).and_then(|i| groups.into_iter().nth(i)).ok_or_else(|| {
            eyre!("{} holds {count} groups; --index {index} is out of range (1 is the first)", path.display())
        })?;
        group?.choose_langs(langs)
    }

    /// This group with only the languages `langs` (all without), validated.
    fn choose_langs(mut self, langs: Option<&[String]>) -> Result<Self> {
        if let Some(langs) = langs {
            self.keep_langs(langs)?;
        }
        self.validate()?;
        Ok(self)
    }

    /// The groups of a file as written, not yet validated; a group that cannot be read (a JSONL line that
    /// is not JSON, a record of the wrong shape) is an error in its place.
    fn parse_file(path: &Path) -> Result<Vec<Result<Self>>> {
        let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
        let stem = path.file_stem().map_or("group".into(), |s| s.to_string_lossy().into_owned());
        let trimmed = text.trim_start();
        let values: Vec<Result<serde_json::Value>> = if trimmed.starts_with('[') {
            let array = parse_json(trimmed).wrap_err_with(|| format!("{} is not valid JSON", path.display()))?;
            let items: Vec<serde_json::Value> = serde_json::from_value(array)?;
            items.into_iter().map(Ok).collect()
        } else if let Ok(value) = parse_json(trimmed) {
            vec![Ok(value)]
        } else {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    parse_json(l).wrap_err_with(|| format!("{} line {}: not valid JSON", path.display(), i + 1))
                })
                .collect()
        };
        if values.is_empty() {
            bail!("{} holds no edit groups", path.display());
        }
        Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                Self::parse_json(value?, &format!("{stem}-{}", i + 1))
                    .wrap_err_with(|| format!("reading edit groups from {}", path.display()))
            })
            .collect())
    }

    /// Parses our own group format or a benchmark record.
    pub fn from_json(value: serde_json::Value, default_name: &str) -> Result<Self> {
        let group = Self::parse_json(value, default_name)?;
        group.validate()?;
        Ok(group)
    }

    fn parse_json(value: serde_json::Value, default_name: &str) -> Result<Self> {
        if value.get("descriptors").is_some() {
            return serde_json::from_value(value).wrap_err("not a valid edit group");
        }
        // A record's values are its languages' entries; anything else is neither format (a careless
        // `{"edits": [...]}` would otherwise be reported as a language named `edits`).
        if let Some(key) = value.as_object().and_then(|object| object.iter().find(|(_, v)| !v.is_object())) {
            bail!(
                "neither an edit group ({{\"descriptors\": [{{\"lang\", \"subject\", \"prompt\", \"target\"}}, ...]}}) \
                 nor a benchmark record ({{\"en\": {{\"subject\", \"src\", \"alt\"}}, ...}}): `{}` is not a language's entry",
                key.0
            );
        }
        let record = BenchmarkRecord::from_json(value)?;
        let name = record.iter().next().map_or(default_name.to_string(), |(_, e)| e.subject.clone());
        Ok(Self::from_benchmark_unchecked(&name, &record, None))
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
            let value =
                parse_json(line).wrap_err_with(|| format!("{} line {}: not valid JSON", path.display(), i + 1))?;
            BenchmarkRecord::from_json(value).wrap_err_with(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// Parses JSON as `serde_json` does, but refuses an object with a key twice: serde_json keeps the last
/// silently, and a record with two blocks of one language would lose one unseen.
fn parse_json(text: &str) -> serde_json::Result<serde_json::Value> {
    serde_json::from_str::<UniqueKeys>(text).map(|UniqueKeys(value)| value)
}

/// A JSON value whose objects have each key once.
struct UniqueKeys(serde_json::Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueKeys, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key `{key}` appears twice in one object")));
            }
            object.insert(key, value);
        }
        Ok(UniqueKeys(serde_json::Value::Object(object)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueKeys, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(UniqueKeys(serde_json::Value::Array(items)))
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(v.into()))
    }

    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys(serde_json::Value::Null))
    }
}

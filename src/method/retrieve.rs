//! Finding the cache entries whose subject a query mentions.
//!
//! Exact substring matching misses inflected (Russian "Шмавона Шмавоняна") and transliterated (Czech
//! "Šmavon" for "Shmavon") mentions. We fold case, diacritics and punctuation, then score a subject by
//! the share of its character trigrams found in the query: an inflected or re-spelled name keeps most
//! of its trigrams, an unrelated question keeps few. Scripts without spaces (Chinese, Thai) work the
//! same way. Entries that share a subject are told apart by how much the query resembles their prompts.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalSettings {
    /// An entry fires when this share of one of its subjects' character trigrams occurs in the query.
    pub threshold: f32,
    /// Subjects with fewer normalized characters than this must appear as whole words.
    pub min_fuzzy_chars: usize,
    /// Entries whose subject scores are within this margin of the best are ranked by prompt similarity
    /// and only the most similar fires.
    pub same_subject_margin: f32,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self { threshold: 0.75, min_fuzzy_chars: 5, same_subject_margin: 0.05 }
    }
}

/// One entry that a query mentions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub entry_id: String,
    /// Share of the matched subject's trigrams found in the query, in [0, 1].
    pub score: f32,
    pub matched_subject: String,
}

struct IndexedSubject {
    entry_id: String,
    original: String,
    normalized: String,
    trigrams: HashSet<String>,
}

/// An index over the subjects (and prompts) of cache entries.
pub struct SubjectIndex {
    settings: RetrievalSettings,
    subjects: Vec<IndexedSubject>,
    /// Trigram -> positions in `subjects`, to score only subjects that share something with the query.
    postings: HashMap<String, Vec<usize>>,
    prompts: HashMap<String, Vec<HashSet<String>>>,
}

impl SubjectIndex {
    pub fn new(settings: RetrievalSettings) -> Self {
        Self { settings, subjects: Vec::new(), postings: HashMap::new(), prompts: HashMap::new() }
    }

    pub fn insert(&mut self, entry_id: &str, subjects: &[String], prompts: &[String]) {
        for subject in subjects {
            let normalized = normalize(subject);
            if normalized.is_empty() {
                continue;
            }
            let trigrams = trigrams(&normalized);
            for t in &trigrams {
                self.postings.entry(t.clone()).or_default().push(self.subjects.len());
            }
            self.subjects.push(IndexedSubject {
                entry_id: entry_id.to_string(),
                original: subject.clone(),
                normalized,
                trigrams,
            });
        }
        self.prompts.insert(entry_id.to_string(), prompts.iter().map(|p| trigrams(&normalize(p))).collect());
    }

    pub fn remove(&mut self, entry_id: &str) {
        if self.subjects.iter().any(|s| s.entry_id == entry_id) {
            let kept: Vec<IndexedSubject> = std::mem::take(&mut self.subjects);
            self.postings.clear();
            let prompts = std::mem::take(&mut self.prompts);
            for s in kept.into_iter().filter(|s| s.entry_id != entry_id) {
                for t in &s.trigrams {
                    self.postings.entry(t.clone()).or_default().push(self.subjects.len());
                }
                self.subjects.push(s);
            }
            self.prompts = prompts;
        }
        self.prompts.remove(entry_id);
    }

    /// The entries the query mentions, best first.
    pub fn search(&self, query: &str) -> Vec<Hit> {
        let normalized = normalize(query);
        let query_trigrams = trigrams(&normalized);
        let padded_query = format!(" {normalized} ");
        let mut shared: HashMap<usize, usize> = HashMap::new();
        for t in &query_trigrams {
            for &i in self.postings.get(t).into_iter().flatten() {
                *shared.entry(i).or_default() += 1;
            }
        }
        // Only subjects sharing a good part of their trigrams can score above the threshold.
        shared.retain(|&i, count| *count as f32 >= 0.3 * self.subjects[i].trigrams.len() as f32);
        let query_words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        let query_joined: Vec<char> = normalized.chars().filter(|c| *c != ' ').collect();
        // Best subject score per entry.
        let mut best: HashMap<&str, (f32, &IndexedSubject)> = HashMap::new();
        for i in shared.into_keys() {
            let subject = &self.subjects[i];
            let score = if padded_query.contains(&format!(" {} ", subject.normalized)) {
                1.0
            } else if subject.normalized.chars().count() < self.settings.min_fuzzy_chars {
                0.0
            } else if is_unspaced_script(&subject.normalized) {
                bigram_containment(&subject.normalized, &query_joined)
            } else if numbers_present(&subject.normalized, &query_words) {
                windowed_containment(subject, &query_words)
            } else {
                0.0
            };
            if score >= self.settings.threshold {
                let slot = best.entry(subject.entry_id.as_str()).or_insert((score, subject));
                if score > slot.0 {
                    *slot = (score, subject);
                }
            }
        }
        let mut hits: Vec<(f32, f32, Hit)> = best
            .into_iter()
            .map(|(id, (score, subject))| {
                let resemblance = self
                    .prompts
                    .get(id)
                    .map_or(0.0, |prompts| prompts.iter().map(|p| jaccard(p, &query_trigrams)).fold(0.0, f32::max));
                let hit = Hit { entry_id: id.to_string(), score, matched_subject: subject.original.clone() };
                (score, resemblance, hit)
            })
            .collect();
        hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.entry_id.cmp(&b.2.entry_id)));
        // Entries about the same subject (other relations): only the one whose prompts the query
        // resembles most fires.
        let mut kept: Vec<(f32, f32, Hit)> = Vec::new();
        for candidate in hits {
            match kept.iter_mut().find(|k| self.share_subject(&k.2.entry_id, &candidate.2.entry_id)) {
                None => kept.push(candidate),
                Some(rival) => {
                    let close = rival.0 - candidate.0 <= self.settings.same_subject_margin;
                    if close && candidate.1 > rival.1 {
                        *rival = candidate;
                    }
                }
            }
        }
        kept.into_iter().map(|(_, _, hit)| hit).collect()
    }

    /// Whether two entries have a subject in common.
    fn share_subject(&self, a: &str, b: &str) -> bool {
        let of = |id: &str| -> HashSet<&str> {
            self.subjects.iter().filter(|s| s.entry_id == id).map(|s| s.normalized.as_str()).collect()
        };
        !of(a).is_disjoint(&of(b))
    }
}

/// Lowercase, without diacritics, punctuation turned to spaces, whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded = fold_diacritic(c);
        if folded.is_alphanumeric() {
            out.push(folded);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_string()
}

/// Share of the subject's trigrams found within a few consecutive query words: a mention of the
/// subject is local, so trigrams scattered over a long question do not add up to a hit.
fn windowed_containment(subject: &IndexedSubject, query_words: &[&str]) -> f32 {
    let window = subject.normalized.split(' ').count() + 1;
    let mut best = 0.0f32;
    for start in 0..query_words.len() {
        let span = query_words[start..(start + window).min(query_words.len())].join(" ");
        let found = trigrams(&span).intersection(&subject.trigrams).count();
        best = best.max(found as f32 / subject.trigrams.len() as f32);
        if start + window >= query_words.len() {
            break;
        }
    }
    best
}

/// Share of the subject's character pairs that occur in the query (spaces removed): Chinese and Thai
/// words are mostly one or two characters long.
fn bigram_containment(subject: &str, query: &[char]) -> f32 {
    let pairs = |chars: &[char]| -> HashSet<(char, char)> { chars.windows(2).map(|w| (w[0], w[1])).collect() };
    let subject_chars: Vec<char> = subject.chars().filter(|c| *c != ' ').collect();
    let subject_pairs = pairs(&subject_chars);
    if subject_pairs.is_empty() {
        return 0.0;
    }
    subject_pairs.intersection(&pairs(query)).count() as f32 / subject_pairs.len() as f32
}

/// Numbers in a subject ("Mark 19", "Unidos-64") tell entities apart: all must appear in the query.
fn numbers_present(subject: &str, query_words: &[&str]) -> bool {
    subject.split(' ').filter(|w| w.chars().any(|c| c.is_ascii_digit())).all(|number| query_words.contains(&number))
}

/// Chinese, Japanese and Thai write words without spaces.
fn is_unspaced_script(text: &str) -> bool {
    text.chars().any(|c| matches!(c as u32, 0x0E00..=0x0E7F | 0x3040..=0x30FF | 0x3400..=0x9FFF | 0xF900..=0xFAFF))
}

/// Character trigrams of a normalized text, words padded with spaces so starts and ends count.
fn trigrams(normalized: &str) -> HashSet<String> {
    let mut set = HashSet::new();
    for word in normalized.split(' ').filter(|w| !w.is_empty()) {
        let chars: Vec<char> = format!(" {word} ").chars().collect();
        for window in chars.windows(3) {
            set.insert(window.iter().collect());
        }
    }
    set
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f32 {
    let common = a.intersection(b).count();
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f32 / union as f32
    }
}

/// Maps accented Latin and Cyrillic letters to their base letter.
fn fold_diacritic(c: char) -> char {
    const FOLDS: &[(&str, char)] = &[
        ("àáâãäåāăąǎạảấầẩẫậắằẳẵặ", 'a'),
        ("çćĉċč", 'c'),
        ("ďđ", 'd'),
        ("èéêëēĕėęěẹẻẽếềểễệ", 'e'),
        ("ĝğġģ", 'g'),
        ("ĥħ", 'h'),
        ("ìíîïĩīĭįıǐỉịı", 'i'),
        ("ĵ", 'j'),
        ("ķ", 'k'),
        ("ĺļľŀł", 'l'),
        ("ñńņňŉ", 'n'),
        ("òóôõöøōŏőǒọỏốồổỗộơớờởỡợ", 'o'),
        ("ŕŗř", 'r'),
        ("śŝşšș", 's'),
        ("ţťŧț", 't'),
        ("ùúûüũūŭůűųǔụủưứừửữự", 'u'),
        ("ŵ", 'w'),
        ("ýÿŷỳỵỷỹ", 'y'),
        ("źżž", 'z'),
        ("ё", 'е'),
        ("й", 'и'),
    ];
    if c.is_ascii() {
        return c;
    }
    FOLDS.iter().find(|(from, _)| from.contains(c)).map_or(c, |&(_, to)| to)
}

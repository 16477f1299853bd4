//! The metrics of MzsRE / Bi-ZsRE plus what users see (METHOD.md sections 4 and 5), and how one answer
//! is scored: teacher forced (argmax at each target position) or generated (the first line, as chat
//! shows it).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What a question tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// The edit prompt `src` gives the new answer `alt`.
    Reliability,
    /// The dataset's paraphrase `rephrase` gives `alt` (never used for editing).
    Generality,
    /// An unrelated question `loc` gets the same answer as before the edit.
    Locality,
    /// A question that needs the new fact (`portability`) gets its answer.
    Portability,
    /// Generality on the records whose `rephrase` differs from `src` (in MzsRE 16-26% of non-English
    /// rephrasings equal the edit prompt, which makes Generality partly a second Reliability).
    DistinctGenerality,
    /// A question about another relation of the edited subject gets the same answer as before the edit.
    Specificity,
    /// Share of specificity answers that state the edit's new target: the edit hijacked its subject
    /// (lower is better; generated answers only).
    SpecificityNewTarget,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Reliability,
        Metric::Generality,
        Metric::DistinctGenerality,
        Metric::Locality,
        Metric::Specificity,
        Metric::SpecificityNewTarget,
        Metric::Portability,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Reliability => "Reliability",
            Metric::Generality => "Generality",
            Metric::Locality => "Locality",
            Metric::Portability => "Portability",
            Metric::DistinctGenerality => "Generality (rephrase != src)",
            Metric::Specificity => "Specificity",
            Metric::SpecificityNewTarget => "Specificity: new target stated (lower is better)",
        }
    }

    /// Whether the reference is the unedited model's own answer rather than the dataset's.
    pub fn compares_with_unedited(self) -> bool {
        matches!(self, Metric::Locality | Metric::Specificity)
    }
}

/// F1 and exact match of one answer, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Score {
    pub f1: f64,
    pub em: f64,
}

/// Token F1 as the MzsRE / Bi-ZsRE evaluate.py computes it: |I|^2 / (|a| * |b|) with I the multiset
/// intersection of the two token-id sequences (precision times recall). Two empty answers agree.
pub fn token_f1(answer: &[u32], reference: &[u32]) -> f64 {
    if answer.is_empty() || reference.is_empty() {
        return if answer.is_empty() && reference.is_empty() { 1.0 } else { 0.0 };
    }
    let mut remaining: HashMap<u32, usize> = HashMap::new();
    for &token in reference {
        *remaining.entry(token).or_default() += 1;
    }
    let mut common = 0usize;
    for token in answer {
        if let Some(count) = remaining.get_mut(token).filter(|c| **c > 0) {
            *count -= 1;
            common += 1;
        }
    }
    (common * common) as f64 / (answer.len() * reference.len()) as f64
}

/// Scores an answer against a reference: token F1 over the ids, EM as exact equality of the decoded
/// strings (surrounding whitespace aside: the answer is tokenized after a space).
pub fn score(answer_ids: &[u32], answer_text: &str, reference_ids: &[u32], reference_text: &str) -> Score {
    Score {
        f1: token_f1(answer_ids, reference_ids),
        em: if answer_text.trim() == reference_text.trim() { 1.0 } else { 0.0 },
    }
}

/// Text as generated answers are compared: lowercase, punctuation and leading articles dropped,
/// whitespace collapsed (SQuAD's normalisation, articles only where the answer starts).
pub fn normalize_answer(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_alphanumeric() { c.to_lowercase().next().unwrap_or(c) } else { ' ' }).collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    while words.len() > 1 && matches!(words[0], "a" | "an" | "the") {
        words.remove(0);
    }
    words.join(" ")
}

/// Whether a generated line states `target` first: its normalised text starts with the normalised
/// target at a word boundary (in scripts written without spaces, anywhere after the target).
pub fn states_first(line: &str, target: &str) -> bool {
    let (line, target) = (normalize_answer(line), normalize_answer(target));
    if target.is_empty() || !line.starts_with(&target) {
        return false;
    }
    match (line[target.len()..].chars().next(), target.chars().last()) {
        (None, _) => true,
        (Some(next), Some(last)) => !next.is_alphanumeric() || Script::of(last).is_some_and(Script::unspaced),
        (Some(_), None) => false,
    }
}

/// Whether a generated line mentions `target` anywhere (normalised).
pub fn mentions(line: &str, target: &str) -> bool {
    let (line, target) = (normalize_answer(line), normalize_answer(target));
    !target.is_empty() && format!(" {line} ").contains(&format!(" {target} "))
        || target.chars().last().and_then(Script::of).is_some_and(Script::unspaced) && line.contains(&target)
}

/// Scores a generated first line: against the dataset's target (EM: [`states_first`]), or for
/// Locality and Specificity against the unedited model's first line (EM: identical). F1 over token ids.
pub fn generated_score(line_ids: &[u32], line: &str, reference_ids: &[u32], reference: &str, same_text: bool) -> Score {
    let em = if same_text { line.trim() == reference.trim() } else { states_first(line, reference) };
    Score { f1: token_f1(line_ids, reference_ids), em: if em { 1.0 } else { 0.0 } }
}

/// The writing systems told apart when checking that an answer is in its question's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Script {
    Latin,
    Cyrillic,
    Greek,
    Arabic,
    Hebrew,
    Devanagari,
    Thai,
    Han,
    Kana,
    Hangul,
    Other,
}

impl Script {
    /// The script of a letter; `None` for digits, punctuation and spaces.
    pub fn of(c: char) -> Option<Script> {
        if !c.is_alphabetic() {
            return None;
        }
        Some(match c as u32 {
            0x0000..=0x024F | 0x1E00..=0x1EFF => Script::Latin,
            0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
            0x0400..=0x052F => Script::Cyrillic,
            0x0590..=0x05FF => Script::Hebrew,
            0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => Script::Arabic,
            0x0900..=0x097F => Script::Devanagari,
            0x0E00..=0x0E7F => Script::Thai,
            0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Kana,
            0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => Script::Hangul,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => Script::Han,
            _ => Script::Other,
        })
    }

    /// Scripts whose words are not separated by spaces.
    pub fn unspaced(self) -> bool {
        matches!(self, Script::Thai | Script::Han | Script::Kana)
    }

    /// The script most of the text's letters are in; `None` for text without letters.
    pub fn dominant(text: &str) -> Option<Script> {
        let mut counts: HashMap<Script, usize> = HashMap::new();
        for script in text.chars().filter_map(Script::of) {
            *counts.entry(script).or_default() += 1;
        }
        counts.into_iter().max_by_key(|&(script, n)| (n, std::cmp::Reverse(script))).map(|(script, _)| script)
    }
}

/// Whether an answer is written in its question's script; an answer without letters (a year) is.
pub fn in_question_script(question: &str, answer: &str) -> bool {
    match (Script::dominant(question), Script::dominant(answer)) {
        (Some(q), Some(a)) => q == a || (q == Script::Kana && a == Script::Han),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_is_precision_times_recall_over_the_multiset_intersection() {
        assert_eq!(token_f1(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(token_f1(&[1, 2], &[3, 4]), 0.0);
        // One of two answer tokens in a three-token reference: 1^2 / (2 * 3).
        assert!((token_f1(&[1, 9], &[1, 2, 3]) - 1.0 / 6.0).abs() < 1e-12);
        // Order does not matter.
        assert_eq!(token_f1(&[3, 2, 1], &[1, 2, 3]), 1.0);
    }

    #[test]
    fn repeated_tokens_count_only_as_often_as_both_sides_have_them() {
        // Answer [5, 5, 5] vs reference [5, 7]: the intersection holds one 5, so 1 / (3 * 2).
        assert!((token_f1(&[5, 5, 5], &[5, 7]) - 1.0 / 6.0).abs() < 1e-12);
        // Two 5s on both sides: I = {5, 5}, 4 / (3 * 2).
        assert!((token_f1(&[5, 5, 8], &[5, 5]) - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(token_f1(&[5, 5], &[5, 5]), 1.0);
    }

    #[test]
    fn empty_answers() {
        assert_eq!(token_f1(&[], &[]), 1.0);
        assert_eq!(token_f1(&[], &[1]), 0.0);
        assert_eq!(token_f1(&[1], &[]), 0.0);
    }

    #[test]
    fn exact_match_compares_decoded_strings() {
        assert_eq!(score(&[1, 2], " Yemen", &[1, 2], "Yemen"), Score { f1: 1.0, em: 1.0 });
        // Different ids that decode to the same text are an exact match; F1 still sees the ids.
        assert_eq!(score(&[3], "Yemen", &[1, 2], "Yemen"), Score { f1: 0.0, em: 1.0 });
        assert_eq!(score(&[1, 2], "Yemeni", &[1, 2, 4], "Yemen").em, 0.0);
    }

    #[test]
    fn generated_answers_state_the_target_first_at_a_word_boundary() {
        assert!(states_first(" Lisbon, Portugal.", "Lisbon"));
        assert!(states_first("The United States of America", "United States"));
        assert!(!states_first("Lisbonia", "Lisbon"));
        assert!(!states_first("It is Lisbon", "Lisbon"));
        assert!(!states_first("anything", ""));
        // No spaces between Chinese words: the target may run on.
        assert!(states_first("里斯本市", "里斯本"));
        assert!(mentions("born in Lisbon, 1867", "lisbon"));
        assert!(!mentions("Lisbonia", "Lisbon"));
        assert!(mentions("她出生于里斯本", "里斯本"));
    }

    #[test]
    fn generated_locality_compares_the_whole_first_line() {
        assert_eq!(generated_score(&[1, 2], " Pierre Curie", &[1, 2], "Pierre Curie", true).em, 1.0);
        assert_eq!(generated_score(&[1, 3], "Pierre Curie in 1898", &[1, 2], "Pierre Curie", true).em, 0.0);
        assert_eq!(generated_score(&[1, 3], "Pierre Curie in 1898", &[1, 2], "Pierre Curie", false).em, 1.0);
    }

    #[test]
    fn scripts_of_answers() {
        assert_eq!(Script::dominant("Москва (Msk)"), Some(Script::Cyrillic));
        assert_eq!(Script::dominant("1898"), None);
        assert!(in_question_script("Aus welchem Land kommt er?", " Jemen"));
        assert!(!in_question_script("Из какой страны он?", " Yemen"));
        assert!(in_question_script("他来自哪个国家？", "1898"));
        assert!(in_question_script("彼はどこの出身ですか", "東京"));
        assert!(!in_question_script("他来自哪个国家？", "Yemen"));
    }
}

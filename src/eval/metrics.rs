//! The four metrics of MzsRE / Bi-ZsRE and how one teacher-forced answer is scored (METHOD.md section 4).

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
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Reliability, Metric::Generality, Metric::Locality, Metric::Portability];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Reliability => "Reliability",
            Metric::Generality => "Generality",
            Metric::Locality => "Locality",
            Metric::Portability => "Portability",
        }
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
}

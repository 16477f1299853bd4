//! How a text is written, names aside: what tells which of a few known languages a question is in.

use std::collections::HashSet;

use super::scripts::Script;
use super::tokens::{ngrams, tokenize, Gram};

/// A text's script and the character n-grams of its words ([`ngrams`]), names left out (they are
/// written alike in many languages, or tell a language only by how one field spells them).
#[derive(Debug, Clone, PartialEq)]
pub struct Writing {
    script: Option<Script>,
    grams: HashSet<Gram>,
}

impl Writing {
    /// How `text` is written, each of `names` (found as written) left out.
    pub fn of(text: &str, names: &[&str]) -> Self {
        let mut text = text.to_string();
        for name in names.iter().map(|name| name.trim()).filter(|name| !name.is_empty()) {
            text = text.replace(name, " ");
        }
        let grams = tokenize(&text)
            .iter()
            .flat_map(|token| ngrams(token.kind, &token.text.chars().collect::<Vec<_>>()))
            .collect();
        Self { script: Script::detect(&text), grams }
    }

    /// How alike `self` and `other` are written: whether in one script (a script tells more than any
    /// number of shared n-grams: a Russian question shares none with a Vietnamese one), then the Dice
    /// coefficient of their n-grams. Greater is more alike.
    pub fn likeness(&self, other: &Writing) -> (bool, f32) {
        let shared = self.grams.intersection(&other.grams).count();
        let total = self.grams.len() + other.grams.len();
        let dice = if total == 0 { 0.0 } else { 2.0 * shared as f32 / total as f32 };
        (self.script.is_some() && self.script == other.script, dice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn likeness(a: &str, b: &str, names: &[&str]) -> (bool, f32) {
        Writing::of(a, names).likeness(&Writing::of(b, names))
    }

    #[test]
    fn a_question_is_written_most_like_its_own_language() {
        let names = ["Piero de Palma", "Piera de Palme"];
        let question = "Kako je bio opseg glasa Piera de Palme?";
        let serbian = likeness(question, "Kakva je vrsta glasa Piera de Palme?", &names);
        let slovenian = likeness(question, "Kakšen je bil glasovni tip Piera de Palme?", &names);
        let english = likeness(question, "What was the voice type of Piero de Palma?", &names);
        assert!(serbian.1 > slovenian.1 && slovenian.1 > english.1, "{serbian:?} {slovenian:?} {english:?}");
        // The script comes first, names aside: only the name is Latin in this Russian question.
        let russian = likeness("Какой голос у Piero de Palma?", "Какой тип голоса был у Пьеро де Пальма?", &names);
        let vietnamese = likeness("Какой голос у Piero de Palma?", "Piero de Palma có giọng gì?", &names);
        assert!(russian.0 && !vietnamese.0, "{russian:?} {vietnamese:?}");
        // Unspaced scripts compare by character pairs.
        let chinese = likeness("皮耶罗·德·帕尔马的声音类型是什么？", "皮耶罗·德·帕尔马是什么声音类型？", &[]);
        assert!(chinese.0 && chinese.1 > 0.5, "{chinese:?}");
        assert_eq!(likeness("", "", &[]), (false, 0.0));
    }
}

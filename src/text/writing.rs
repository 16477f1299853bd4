//! How a text is written, names aside: what tells which of a few known languages a question is in.

use std::cmp::Ordering;
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
    /// coefficient of their n-grams.
    pub fn likeness(&self, other: &Writing) -> Likeness {
        let shared = self.grams.intersection(&other.grams).count();
        let total = self.grams.len() + other.grams.len();
        let dice = if total == 0 { 0.0 } else { 2.0 * shared as f32 / total as f32 };
        Likeness { same_script: self.script.is_some() && self.script == other.script, dice }
    }
}

/// How alike two texts are written ([`Writing::likeness`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Likeness {
    pub same_script: bool,
    /// Dice coefficient of their n-grams, in [0, 1].
    pub dice: f32,
}

impl Likeness {
    /// Orders likenesses, greater more alike: the same script first, then the Dice coefficient.
    pub fn total_cmp(&self, other: &Likeness) -> Ordering {
        self.same_script.cmp(&other.same_script).then(self.dice.total_cmp(&other.dice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn likeness(a: &str, b: &str, names: &[&str]) -> Likeness {
        Writing::of(a, names).likeness(&Writing::of(b, names))
    }

    #[test]
    fn a_question_is_written_most_like_its_own_language() {
        let names = ["Piero de Palma", "Piera de Palme"];
        let question = "Kako je bio opseg glasa Piera de Palme?";
        let serbian = likeness(question, "Kakva je vrsta glasa Piera de Palme?", &names);
        let slovenian = likeness(question, "Kakšen je bil glasovni tip Piera de Palme?", &names);
        let english = likeness(question, "What was the voice type of Piero de Palma?", &names);
        assert!(
            serbian.dice > slovenian.dice && slovenian.dice > english.dice,
            "{serbian:?} {slovenian:?} {english:?}"
        );
        // The script comes first, names aside: only the name is Latin in this Russian question.
        let russian = likeness("Какой голос у Piero de Palma?", "Какой тип голоса был у Пьеро де Пальма?", &names);
        let vietnamese = likeness("Какой голос у Piero de Palma?", "Piero de Palma có giọng gì?", &names);
        assert!(russian.same_script && !vietnamese.same_script, "{russian:?} {vietnamese:?}");
        // Unspaced scripts compare by character pairs.
        let chinese = likeness("皮耶罗·德·帕尔马的声音类型是什么？", "皮耶罗·德·帕尔马是什么声音类型？", &[]);
        assert!(chinese.same_script && chinese.dice > 0.5, "{chinese:?}");
        assert_eq!(likeness("", "", &[]), Likeness { same_script: false, dice: 0.0 });
    }
}

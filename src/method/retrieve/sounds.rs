//! Subjects found by how they sound where the query writes them in another script: an edit made with
//! "Darrell Spencer" is found by "Даррелла Спенсера", "דרל ספנסר" or "دارل سبنسر", whose letters the
//! loose spellings of the main search cannot bring together (Hebrew and Arabic leave vowels out,
//! Cyrillic renders "c" as "с" or "к"). Each word of a subject is kept as its consonant key
//! (`text::sounds`); a query's words, in order, must have every keyed word of the subject, each in
//! another script than the subject's, at a cost that leaves the score above the firing threshold.
//! Consonants alone are in many unrelated words ("было первое" sounds like "Paul Bartsch"): in a
//! script with letter case the query's words must be capitalized, as names are; where both scripts
//! write vowels, the vowels must roughly agree ("Prince" is not "Браўн"); where either has no case,
//! the subject must have many consonants. Short subjects are not kept.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::RetrievalSettings;
use crate::text::scripts::Script;
use crate::text::sounds::{sound_distance, sound_key, vowels_agree, SoundKey};
use crate::text::tokens::{Token, TokenKind};

/// A query word as the sound index reads it: its key, and whether it was capitalized.
type QueryWord = (SoundWord, bool);

/// Fewest consonants a subject's words must have between them to be found by sound, and a subject of
/// one word (no neighbour to confirm it); to be found by words of a script without letter case.
const MIN_LETTERS: usize = 5;
const MIN_SINGLE_WORD_LETTERS: usize = 6;
const MIN_CASELESS_LETTERS: usize = 7;

/// Subject slots of the index kept by sound, and where each of their words' keys begins.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct SoundIndex {
    subjects: HashMap<usize, SoundSubject>,
    /// `anchor` code of a word's key -> (slot, position of the word in the subject, its script): the
    /// script is here so that a search passes over words of the query's own script without reading
    /// their subjects.
    anchors: HashMap<u32, Vec<(usize, usize, Option<Script>)>>,
}

#[derive(Serialize, Deserialize)]
struct SoundSubject {
    words: Vec<SoundWord>,
    /// Consonants of all its words (numbers not counted).
    letters: usize,
}

#[derive(Serialize, Deserialize)]
struct SoundWord {
    /// Consonant key, or the digits of a number.
    key: Vec<u8>,
    /// Vowel groups where the script writes vowels (see `SoundKey::vowels`).
    vowels: Option<Vec<u8>>,
    script: Option<Script>,
    number: bool,
}

impl SoundWord {
    /// A token of `script` (`Script::detect` of its text). A run (of a script without spaces) is a
    /// word without a key: nothing matches it.
    fn new(token: &Token, script: Option<Script>) -> Self {
        let (SoundKey { consonants, vowels }, number) = match token.kind {
            TokenKind::Word => (sound_key(&token.text), false),
            TokenKind::Number => (SoundKey { consonants: token.text.as_bytes().to_vec(), vowels: None }, true),
            TokenKind::Run => (SoundKey { consonants: Vec::new(), vowels: None }, false),
        };
        Self { key: consonants, vowels, script, number }
    }

    /// A query token; one that cannot stand for a name (a word not capitalized in a script with
    /// case, which `SoundSubject::score` refuses whatever its sound) without its key.
    fn of_query(token: &Token, capitalized: bool) -> Self {
        let script = Script::detect(&token.text);
        if token.kind == TokenKind::Word && !capitalized && script.is_some_and(Script::has_case) {
            return Self { key: Vec::new(), vowels: None, script, number: false };
        }
        Self::new(token, script)
    }
}

/// The codes a key is found under: its first three classes, or its first two if it has only two
/// (a query word also looks under its first two: a subject word of two classes may gain an ending).
fn anchor(key: &[u8]) -> Option<u32> {
    match key {
        [a, b, c, ..] => Some(3 << 24 | u32::from(*a) << 16 | u32::from(*b) << 8 | u32::from(*c)),
        [a, b] => Some(2 << 24 | u32::from(*a) << 16 | u32::from(*b) << 8),
        _ => None,
    }
}

impl SoundIndex {
    /// Keeps the subject at `slot` if it has enough consonants and no run.
    pub(super) fn insert(&mut self, slot: usize, tokens: &[Token]) {
        if tokens.iter().any(|t| t.kind == TokenKind::Run) {
            return;
        }
        let words: Vec<SoundWord> = tokens.iter().map(|t| SoundWord::new(t, Script::detect(&t.text))).collect();
        let letters = words.iter().filter(|w| !w.number).map(|w| w.key.len()).sum();
        let keyed = words.iter().filter(|w| !w.number && !w.key.is_empty()).count();
        let least = if keyed == 1 { MIN_SINGLE_WORD_LETTERS } else { MIN_LETTERS };
        if letters < least {
            return;
        }
        for (position, word) in words.iter().enumerate().filter(|(_, w)| !w.number) {
            if let Some(code) = anchor(&word.key) {
                self.anchors.entry(code).or_default().push((slot, position, word.script));
            }
        }
        self.subjects.insert(slot, SoundSubject { words, letters });
    }

    pub(super) fn remove(&mut self, slot: usize) {
        let Some(subject) = self.subjects.remove(&slot) else { return };
        for code in subject.words.iter().filter_map(|w| anchor(&w.key)) {
            if let Some(places) = self.anchors.get_mut(&code) {
                places.retain(|&(s, ..)| s != slot);
                if places.is_empty() {
                    self.anchors.remove(&code);
                }
            }
        }
    }

    /// Whether every slot and position it holds is within `is_live_slot` and its subject's words.
    pub(super) fn holds_together(&self, is_live_slot: impl Fn(usize) -> bool) -> bool {
        self.subjects.keys().all(|&slot| is_live_slot(slot))
            && self.anchors.values().flatten().all(|&(slot, position, script)| {
                self.subjects
                    .get(&slot)
                    .and_then(|subject| subject.words.get(position))
                    .is_some_and(|w| w.script == script)
            })
    }

    /// (slot, score, the query words naming it) of every kept subject the query names in another
    /// script, its score (one minus the sound distance per consonant) at least the firing threshold.
    /// `capitalized`: per query token, whether its first letter was uppercase.
    pub(super) fn search(
        &self,
        query_tokens: &[Token],
        capitalized: &[bool],
        settings: &RetrievalSettings,
    ) -> Vec<(usize, f32, Range<usize>)> {
        let words: Vec<QueryWord> =
            query_tokens.iter().zip(capitalized).map(|(t, &c)| (SoundWord::of_query(t, c), c)).collect();
        let mut tried: HashSet<(usize, usize)> = HashSet::new();
        let mut found = Vec::new();
        // Words that could stand for a subject's word: not numbers, and capitalized where the script
        // has case (`SoundSubject::score` asks that of every word; most query words are not).
        let may_name = |(word, capitalized): &QueryWord| {
            !word.number && (*capitalized || !word.script.is_some_and(Script::has_case))
        };
        for (i, (word, _)) in words.iter().enumerate().filter(|(_, w)| may_name(w)) {
            // A subject word of two consonants may be found with an ending.
            let beginning = (word.key.len() > 2).then(|| anchor(&word.key[..2])).flatten();
            for code in [anchor(&word.key), beginning].into_iter().flatten() {
                for &(slot, position, script) in self.anchors.get(&code).into_iter().flatten() {
                    let Some(start) = i.checked_sub(position) else { continue };
                    if script == word.script || !tried.insert((slot, start)) {
                        continue;
                    }
                    let subject = &self.subjects[&slot];
                    if let Some(score) = subject.score(&words[start..], position, settings) {
                        found.push((slot, score, start..start + subject.words.len()));
                    }
                }
            }
        }
        found
    }
}

impl SoundSubject {
    /// The subject's score against the query words from its first, `None` unless it fires: numbers as
    /// written, every other word in another script than the subject's, by `sound_distance`,
    /// capitalized where its script has case.
    /// The word at `anchor`, the one the search found the subject by, is compared first: most
    /// candidates fail there.
    fn score(&self, query: &[QueryWord], anchor: usize, settings: &RetrievalSettings) -> Option<f32> {
        if query.len() < self.words.len() {
            return None;
        }
        let keyed = self.words.iter().filter(|w| !w.number && !w.key.is_empty()).count();
        let threshold = if keyed == 1 { settings.single_word_threshold } else { settings.threshold };
        let allowed = (1.0 - threshold) * self.letters as f32;
        let mut cost = 0.0;
        let positions = std::iter::once(anchor).chain((0..self.words.len()).filter(|&j| j != anchor));
        for (subject, (query, capitalized)) in positions.map(|j| (&self.words[j], &query[j])) {
            if subject.number || query.number {
                if !(subject.number && query.number && subject.key == query.key) {
                    return None;
                }
                continue;
            }
            if subject.key.is_empty() {
                continue;
            }
            let query_cased = query.script.is_some_and(Script::has_case);
            let both_cased = query_cased && subject.script.is_some_and(Script::has_case);
            if subject.script == query.script
                || (query_cased && !capitalized)
                || (!both_cased && self.letters < MIN_CASELESS_LETTERS)
            {
                return None;
            }
            if let (Some(subject_vowels), Some(query_vowels)) = (&subject.vowels, &query.vowels) {
                if !vowels_agree(subject_vowels, query_vowels) {
                    return None;
                }
            }
            // Each word within a share of its own too: a long name matched well must not carry a
            // short one matched to any word of like consonants.
            let word_cost = sound_distance(&subject.key, &query.key);
            cost += word_cost;
            if word_cost > (1.0 - threshold) * subject.key.len() as f32 || cost > allowed {
                return None;
            }
        }
        Some(1.0 - cost / self.letters as f32)
    }
}

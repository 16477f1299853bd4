//! Subjects found by how they sound where the query writes them in another script: an edit made with
//! "Darrell Spencer" is found by "Даррелла Спенсера", "דרל ספנסר" or "دارل سبنسر", whose letters the
//! loose spellings of the main search cannot bring together (Hebrew and Arabic leave vowels out,
//! Cyrillic renders "c" as "с" or "к"). Each word of a subject is kept as its consonant key
//! (`text::sounds`); a query's words, in order, must have every keyed word of the subject, each in
//! another script than the subject's, at a cost that leaves the score above the firing threshold.
//! Consonants alone are in many unrelated words ("было первое" sounds like "Paul Bartsch"): in a
//! script with letter case the query's words must be capitalized, as names are; where both scripts
//! write vowels, the vowels must roughly agree ("Prince" is not "Браўн"); where either has no case,
//! the subject must have many consonants. Short subjects are not kept. Chinese and Japanese write a
//! foreign name syllable by syllable, its words joined by a middle dot, inside runs without spaces
//! ("达雷尔·斯宾塞的出生日期"): the dots mark the words (`SoundIndex::search_joined`).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::RetrievalSettings;
use crate::text::normalize::lowercase_chars_located;
use crate::text::scripts::Script;
use crate::text::sounds::{sound_distance, sound_key, swap_cost, syllables_distance, vowels_agree, SoundKey};
use crate::text::tokens::{tokenize_located, LocatedToken, Token, TokenKind};

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
    /// See `SoundKey::opens_with_consonant` and `SoundKey::codas`.
    opens_with_consonant: bool,
    codas: u64,
    script: Option<Script>,
    number: bool,
}

impl SoundWord {
    /// A token of `script` (`Script::detect` of its text). A run (of a script without spaces) is a
    /// word without a key: nothing matches it.
    fn new(token: &Token, script: Option<Script>) -> Self {
        let (key, number) = match token.kind {
            TokenKind::Word => (sound_key(&token.text), false),
            TokenKind::Number => {
                let digits = token.text.as_bytes().to_vec();
                (SoundKey { consonants: digits, ..SoundKey::default() }, true)
            }
            TokenKind::Run => (SoundKey::default(), false),
        };
        let SoundKey { consonants, vowels, opens_with_consonant, codas } = key;
        Self { key: consonants, vowels, opens_with_consonant, codas, script, number }
    }

    /// A query token; one that cannot stand for a name (a word not capitalized in a script with
    /// case, which `SoundSubject::score` refuses whatever its sound) without its key.
    fn of_query(token: &Token, capitalized: bool) -> Self {
        let script = Script::detect(&token.text);
        if token.kind == TokenKind::Word && !capitalized && script.is_some_and(Script::has_case) {
            return Self {
                key: Vec::new(),
                vowels: None,
                opens_with_consonant: false,
                codas: 0,
                script,
                number: false,
            };
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

    /// (slot, score, the bytes of `query` naming it) of every kept subject the query names in another
    /// script, its score (one minus the sound distance per consonant) at least the firing threshold;
    /// `tokens` are the query's.
    pub(super) fn search(
        &self,
        query: &str,
        tokens: &[LocatedToken],
        settings: &RetrievalSettings,
    ) -> Vec<(usize, f32, Range<usize>)> {
        let words: Vec<QueryWord> =
            tokens.iter().map(|t| (SoundWord::of_query(&t.token, t.capitalized), t.capitalized)).collect();
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
                        let named = tokens[start].span.start..tokens[start + subject.words.len() - 1].span.end;
                        found.push((slot, score, named));
                    }
                }
            }
        }
        found.extend(self.search_joined(query, tokens));
        found
    }

    /// Subjects the query names as Chinese and Japanese write foreign names: a word per part, parts
    /// joined by a middle dot, the first ending a run and the last beginning one ("达雷尔·斯宾塞的出生
    /// 日期是什么？", "ジョージ・ステイシーとは"). The dots mark where a name's words are, as capitals do
    /// in other scripts; a part's syllables render a word's sounds loosely (George, 乔治 qiao-zhi: the r
    /// is gone), so a part may cost up to [`JOINED_WORD_COST`] per consonant of its word.
    fn search_joined(&self, query: &str, tokens: &[LocatedToken]) -> Vec<(usize, f32, Range<usize>)> {
        // What is between a token and the next (the chunks of a huge run share its span: nothing).
        let between = |token: usize| query.get(tokens[token].span.end..tokens[token + 1].span.start);
        let mut found = Vec::new();
        // Each Thai run once (the chunks of a huge run share its span).
        let mut read_runs = HashSet::new();
        for run in tokens.iter().filter(|t| t.token.kind == TokenKind::Run) {
            if Script::detect(&run.token.text) == Some(Script::Thai) && read_runs.insert(run.span.clone()) {
                found.extend(self.thai_names(query, run));
            }
        }
        let mut first = 0;
        while first < tokens.len() {
            let mut last = first;
            while last + 1 < tokens.len() && between(last).is_some_and(joined) {
                last += 1;
            }
            if last > first {
                found.extend(self.joined_name(query, &tokens[first..=last]));
            }
            first = last + 1;
        }
        found
    }

    /// The subjects that `parts` (tokens joined by middle dots) name.
    fn joined_name(&self, query: &str, parts: &[LocatedToken]) -> Vec<(usize, f32, Range<usize>)> {
        // Each part's readings: the first part's endings and the last part's beginnings (a run holds
        // the words around the name), the others whole.
        let readings: Vec<Vec<Reading>> = (parts.iter().enumerate())
            .map(|(i, part)| match part.token.kind {
                TokenKind::Run if i == 0 => run_pieces(query, part, Piece::Ending),
                TokenKind::Run if i == parts.len() - 1 => run_pieces(query, part, Piece::Beginning),
                _ => vec![Reading::whole(part)],
            })
            .collect();
        self.named_by_readings(&readings.iter().map(Vec::as_slice).collect::<Vec<_>>(), MIN_LETTERS)
    }

    /// Thai writes a foreign name's words apart, as it writes phrases apart ("ดาร์เรล สเปนเซอร์เกิดเมื่อ
    /// ไหร่"): the names `run` holds as 2 to [`MAX_THAI_NAME_WORDS`] consecutive stretches between
    /// spaces, read as joined names are (of its first [`MAX_THAI_STRETCHES`] stretches: a bound for a
    /// huge text).
    fn thai_names(&self, query: &str, run: &LocatedToken) -> Vec<(usize, f32, Range<usize>)> {
        let text = &query[run.span.clone()];
        let stretches: Vec<LocatedToken> = (text.split_whitespace())
            .take(MAX_THAI_STRETCHES)
            .filter_map(|stretch| {
                let start = run.span.start + (stretch.as_ptr() as usize - text.as_ptr() as usize);
                match &tokenize_located(stretch)[..] {
                    [only] if only.token.kind == TokenKind::Run => {
                        Some(LocatedToken { span: start + only.span.start..start + only.span.end, ..only.clone() })
                    }
                    _ => None,
                }
            })
            .collect();
        let endings: Vec<Vec<Reading>> = stretches.iter().map(|s| run_pieces(query, s, Piece::Ending)).collect();
        let wholes: Vec<Vec<Reading>> = stretches.iter().map(|s| vec![Reading::whole(s)]).collect();
        let beginnings: Vec<Vec<Reading>> = stretches.iter().map(|s| run_pieces(query, s, Piece::Beginning)).collect();
        let mut found = Vec::new();
        for words in 2..=MAX_THAI_NAME_WORDS.min(stretches.len()) {
            for first in 0..=stretches.len() - words {
                let last = first + words - 1;
                let readings: Vec<&[Reading]> = std::iter::once(endings[first].as_slice())
                    .chain(wholes[first + 1..last].iter().map(Vec::as_slice))
                    .chain(std::iter::once(beginnings[last].as_slice()))
                    .collect();
                // Spaces mark a name less than dots do (Thai puts them between phrases too).
                found.extend(self.named_by_readings(&readings, MIN_CASELESS_LETTERS));
            }
        }
        found
    }

    /// The subjects whose words, one per part, the parts' `readings` sound like (see
    /// [`SoundSubject::score_joined`]).
    fn named_by_readings(&self, readings: &[&[Reading]], least_letters: usize) -> Vec<(usize, f32, Range<usize>)> {
        let mut candidates = HashSet::new();
        for (position, reading) in readings.iter().enumerate() {
            for code in reading.iter().flat_map(|r| near_anchors(&r.word.key)) {
                for &(slot, at, _) in self.anchors.get(&code).into_iter().flatten() {
                    if at == position && self.subjects[&slot].words.len() == readings.len() {
                        candidates.insert(slot);
                    }
                }
            }
        }
        let mut found: Vec<(usize, f32, Range<usize>)> = (candidates.into_iter())
            .filter_map(|slot| {
                let (score, named) = self.subjects[&slot].score_joined(readings, least_letters)?;
                Some((slot, score, named))
            })
            .collect();
        found.sort_unstable_by_key(|&(slot, ..)| slot);
        found
    }
}

/// Marks that join the parts of a foreign name in Chinese and Japanese text.
fn joined(between: &str) -> bool {
    matches!(between, "·" | "・" | "･" | "‧" | "•")
}

/// The anchor codes of the keys one edit from `key`'s beginning (a class left out, added or swapped):
/// a part of a joined name renders its word loosely from its first consonants on (Neumark, 纽马克
/// niu-ma-ke: the r is gone).
fn near_anchors(key: &[u8]) -> Vec<u32> {
    const CLASSES: &[u8] = b"bkdslrmn";
    let start = &key[..key.len().min(4)];
    let mut keys: Vec<Vec<u8>> = vec![start.to_vec()];
    for i in 0..start.len() {
        let mut dropped = start.to_vec();
        dropped.remove(i);
        keys.push(dropped);
        for &other in CLASSES.iter().filter(|&&c| swap_cost(c, start[i]) < 1.0 && c != start[i]) {
            let mut swapped = start.to_vec();
            swapped[i] = other;
            keys.push(swapped);
        }
    }
    for i in 0..=start.len().min(3) {
        for &class in CLASSES {
            let mut added = start.to_vec();
            added.insert(i, class);
            keys.push(added);
        }
    }
    let mut codes: Vec<u32> = keys.iter().filter_map(|k| anchor(k)).collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Characters of Chinese words that join or ask ("at", "of", "and", "who", "which", "is"), which a
/// foreign name neither begins nor ends with.
const CHINESE_FUNCTION_CHARS: &str = "在的了是和与及或由被把从对为于向给让这那哪谁什么中有";

/// Most words of a Thai name looked for, and stretches of a Thai run read for names.
const MAX_THAI_NAME_WORDS: usize = 4;
const MAX_THAI_STRETCHES: usize = 64;

/// Most characters a part of a name in a run is read as: Chinese renders a long word in five or six
/// syllables, Thai in letters and signs of its own ("สเปนเซอร์", 9).
const MAX_PART_CHARS: usize = 6;
const MAX_THAI_PART_CHARS: usize = 16;

/// A part of a name joined by dots has at most this share of its word's consonants edited (a third),
/// and the name less than this share in all (`SoundSubject::score_joined`).
const JOINED_WORD_COST: f32 = 0.34;
const JOINED_TOTAL_COST: f32 = 0.25;

/// One way of reading a part of a joined name: the word it would be, and the bytes of the query it
/// takes.
struct Reading {
    word: SoundWord,
    bytes: Range<usize>,
}

impl Reading {
    /// `token` read as one word (a run too: here it stands for one), taking `bytes`.
    fn new(mut token: Token, bytes: Range<usize>) -> Self {
        if token.kind == TokenKind::Run {
            token.kind = TokenKind::Word;
        }
        let script = Script::detect(&token.text);
        Self { word: SoundWord::new(&token, script), bytes }
    }

    fn whole(token: &LocatedToken) -> Self {
        Self::new(token.token.clone(), token.span.clone())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Piece {
    Ending,
    Beginning,
}

/// The readings of a run's endings of 1 to [`MAX_PART_CHARS`] characters ([`MAX_THAI_PART_CHARS`]
/// in Thai), shortest first, or its beginnings, longest first: of readings equally good the first is
/// taken, an ending as short as it can be and a beginning as long (a name's last word keeps its silent
/// letters: "สเปนเซอร์", not "สเปนเซ").
fn run_pieces(query: &str, run: &LocatedToken, piece: Piece) -> Vec<Reading> {
    // Where each character of the run is in the query (a run goes on across spaces, which it drops).
    let text = &query[run.span.clone()];
    let sources: Vec<Range<usize>> = (lowercase_chars_located(text))
        .filter(|c| !c.c.is_whitespace())
        .map(|c| run.span.start + c.source.start..run.span.start + c.source.end)
        .collect();
    let chars: Vec<char> = run.token.text.chars().collect();
    if sources.len() != chars.len() {
        return vec![Reading::whole(run)];
    }
    let range = |length: usize| match piece {
        Piece::Ending => chars.len() - length..chars.len(),
        Piece::Beginning => 0..length,
    };
    // A piece neither begins nor ends within a syllable (before a long vowel: "ステイシー", not "ステイシ";
    // before a Thai vowel sign or tone mark, or after a Thai vowel written before its consonant),
    // holds no hiragana (Japanese writes foreign names in katakana, its particles in hiragana) and
    // does not reach out to a Chinese word that joins or asks (在哈利 is "at Harry").
    let within_syllable = |i: usize| {
        let after =
            chars.get(i).is_some_and(|&c| c == 'ー' || matches!(c, '\u{0E30}'..='\u{0E3A}' | '\u{0E45}'..='\u{0E4E}'));
        let before = i > 0 && matches!(chars[i - 1], '\u{0E40}'..='\u{0E44}');
        after || before
    };
    let outer = |range: &Range<usize>| match piece {
        Piece::Ending => chars[range.start],
        Piece::Beginning => chars[range.end - 1],
    };
    let most = match Script::detect(&run.token.text) {
        Some(Script::Thai) => MAX_THAI_PART_CHARS,
        _ => MAX_PART_CHARS,
    };
    let lengths = 1..=chars.len().min(most);
    let lengths: Vec<usize> = match piece {
        Piece::Ending => lengths.collect(),
        Piece::Beginning => lengths.rev().collect(),
    };
    (lengths.into_iter())
        .map(range)
        .filter(|range| !within_syllable(range.start) && !within_syllable(range.end))
        .filter(|range| !chars[range.clone()].iter().any(|c| matches!(c, '\u{3041}'..='\u{3096}')))
        .filter(|range| !CHINESE_FUNCTION_CHARS.contains(outer(range)))
        .map(|range| {
            let piece = Token { kind: TokenKind::Word, text: chars[range.clone()].iter().collect() };
            Reading::new(piece, sources[range.start].start..sources[range.end - 1].end)
        })
        .collect()
}

impl SoundSubject {
    /// The score of a name joined by dots whose parts have `readings` (one word of the subject per
    /// part), and the bytes naming it: each word at its part's cheapest reading, in another script or
    /// with the same key; `None` unless every part and the whole are within their shares.
    fn score_joined(&self, readings: &[&[Reading]], least_letters: usize) -> Option<(f32, Range<usize>)> {
        // Only subjects written with vowels and case: a Hebrew or Arabic key is loose already.
        let cased = |w: &SoundWord| w.number || w.script.is_some_and(Script::has_case);
        if self.letters < least_letters || readings.len() != self.words.len() || !self.words.iter().all(cased) {
            return None;
        }
        let mut cost = 0.0;
        let mut named: Option<Range<usize>> = None;
        for (subject, options) in self.words.iter().zip(readings) {
            let distance = |word: &SoundWord| match subject.number {
                true => {
                    if subject.key == word.key {
                        0.0
                    } else {
                        f32::INFINITY
                    }
                }
                // A word of vowels only ("Eo") has nothing to compare: any reading stands for it.
                false if subject.key.is_empty() => 0.0,
                false => syllables_distance(&subject.key, subject.codas, &word.key),
            };
            // A name rendered syllable by syllable opens as the word does, with a vowel or a consonant
            // ("Arnaud" 阿诺, not 瑞特 "Rhett").
            let cheapest = (options.iter())
                .filter(|r| {
                    subject.number == r.word.number && subject.opens_with_consonant == r.word.opens_with_consonant
                })
                .filter(|r| subject.script != r.word.script || subject.key == r.word.key)
                .map(|r| (distance(&r.word), r))
                // Of equal costs, the reading as long as the word ("巴特施" for "Bartsch", not "巴特"),
                // then the first (see `run_pieces`).
                .min_by(|a, b| {
                    let off = |r: &Reading| r.word.key.len().abs_diff(subject.key.len());
                    a.0.total_cmp(&b.0).then(off(a.1).cmp(&off(b.1)))
                })?;
            if cheapest.0 > JOINED_WORD_COST * subject.key.len().max(1) as f32 {
                return None;
            }
            cost += cheapest.0;
            let bytes = &cheapest.1.bytes;
            named = Some(named.map_or(bytes.clone(), |n| n.start.min(bytes.start)..n.end.max(bytes.end)));
        }
        let named = named.filter(|_| cost < JOINED_TOTAL_COST * self.letters as f32)?;
        Some((1.0 - cost / self.letters as f32, named))
    }

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

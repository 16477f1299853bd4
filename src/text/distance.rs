//! How alike two tokens are: edit distances that forgive inflected endings (words) or find a subject
//! inside a longer run (scripts without spaces), character-pair coverage for reordered runs, and set
//! overlap.

use std::collections::HashSet;

use super::normalize::is_vietnamese;
use super::tokens::{Token, TokenKind};

/// Shortest word that may gain an ending without being exactly equal.
const MIN_STEM_CHARS: usize = 3;
/// A fuzzy match may cost one full edit per this many letters beyond the first.
const MAX_EDIT_SHARE: usize = 4;
/// Inflection changes up to this many letters at the end of a word (up to a third of it).
const ENDING_CHARS: usize = 2;
/// Cost of changing a letter of the ending, and of appending a letter after the word.
const ENDING_EDIT_COST: f32 = 0.5;
const APPENDED_LETTER_COST: f32 = 0.25;
/// Cost of dropping the letter before the ending: Slavic declension drops a vowel there ("Pavel" ->
/// "Pavla"), but together with a changed ending a short word becomes another word ("veras", "verd").
const DROPPED_VOWEL_COST: f32 = 0.75;
/// Runs shorter than this must occur exactly: in Thai a few letters occur inside many words.
const MIN_FUZZY_RUN_CHARS: usize = 8;
/// Highest similarity of words that differ in any way, if only in diacritics ("bán", "bạn").
const NOT_EXACT_SIMILARITY: f32 = 0.9;

/// Similarity of a candidate token to a query token of the same kind, in [0, 1], both in the same
/// loose spelling (see `normalize::loose_spelling`), below 1 unless a run occurs as is: an exact token
/// is found by lookup, not by resemblance. A query word that `matches_only_as_spelled` (the caller
/// says, deciding it once for all candidates) and a Vietnamese candidate may only differ in diacritics.
/// `pair_weight` says how much finding a character pair of a run counts (see [`pair_coverage`]).
pub fn token_similarity(
    candidate: Candidate,
    candidate_spelling: &[char],
    query: &Token,
    query_spelling: &[char],
    query_only_as_spelled: bool,
    pair_weight: &dyn Fn(CharPair) -> f32,
) -> f32 {
    match (query.kind, candidate) {
        (TokenKind::Word, Candidate::Word { short, vietnamese }) => {
            let similarity = if query_only_as_spelled || vietnamese {
                if candidate_spelling == query_spelling {
                    1.0
                } else {
                    0.0
                }
            } else {
                word_similarity(candidate_spelling, query_spelling, short)
            };
            similarity.min(NOT_EXACT_SIMILARITY)
        }
        (TokenKind::Run, Candidate::Run { text }) => {
            let similarity = run_similarity(candidate_spelling, query_spelling, pair_weight);
            if query.text.contains(text) {
                similarity
            } else {
                similarity.min(NOT_EXACT_SIMILARITY)
            }
        }
        _ => 0.0,
    }
}

/// What [`token_similarity`] needs to know of a candidate token besides its spelling (a search reads
/// it for thousands of candidates, so a word's is kept beside its spelling, not read from its text).
#[derive(Clone, Copy)]
pub enum Candidate<'a> {
    /// `short`: of at most `exact_match_max_chars` characters as written; `vietnamese`: see
    /// [`is_vietnamese`].
    Word {
        short: bool,
        vietnamese: bool,
    },
    Run {
        text: &'a str,
    },
}

/// Whether a query word resembles only words spelled as it is (in loose spelling): a short word ("le",
/// "de") or a Vietnamese syllable, which does not inflect ("thấy" is not "tháng").
pub fn matches_only_as_spelled(query: &Token, exact_match_max_chars: usize) -> bool {
    let short = query.text.chars().count() <= exact_match_max_chars;
    query.kind == TokenKind::Word && (short || is_vietnamese(&query.text))
}

/// Similarity of a subject word to a longer-than-short query word, in [0, 1], both in loose spelling:
/// one minus an edit distance that forgives changed and added endings, relative to the subject's
/// length. A short subject word may only gain an ending ("Гар" -> "Гаром").
fn word_similarity(subject: &[char], query: &[char], subject_is_short: bool) -> f32 {
    if !word_lengths_may_match(subject.len(), query.len()) {
        return 0.0;
    }
    let allowed = allowed_word_cost(subject.len());
    let cost = if subject_is_short {
        if subject.len() < MIN_STEM_CHARS || !query.starts_with(subject) {
            return 0.0;
        }
        least_word_cost(subject.len(), query.len())
    } else {
        ending_tolerant_distance(subject, query, allowed)
    };
    if cost > allowed {
        0.0
    } else {
        1.0 - cost / subject.len() as f32
    }
}

/// Whether words of these lengths (in the spelling they are compared in) can resemble at all: the
/// cheapest edits making up the difference in length fit in what a fuzzy match may cost. Lets a search
/// pass over most candidates knowing their lengths only.
pub fn word_lengths_may_match(subject_len: usize, query_len: usize) -> bool {
    subject_len > 0 && least_word_cost(subject_len, query_len) <= allowed_word_cost(subject_len)
}

/// The letters of a spelling as a set of 64 bits, a letter's bit chosen by a hash of it (letters may
/// share one, so a difference of two sets can only undercount the letters one lacks).
pub fn letter_set(spelling: &[char]) -> u64 {
    spelling.iter().fold(0, |set, &c| set | 1 << ((c as u32).wrapping_mul(0x9E37_79B1) >> 26))
}

/// Whether a subject word of `subject_len` letters, `missing` of its distinct letters absent from a query
/// word (at most: see [`letter_set`]), could still be within a fuzzy match's cost. Each occurrence of a
/// missing letter is replaced or dropped: the cheapest such edits are the ending's letters, then the
/// letter before the ending (dropped), then full ones. Lets a search pass over candidates that share a
/// syllable with the query word and little else, knowing only their letter sets.
pub fn missing_letters_may_match(subject_len: usize, missing: u32) -> bool {
    let ending = ENDING_CHARS.min(subject_len / 3);
    let prices =
        std::iter::repeat_n(ENDING_EDIT_COST, ending).chain([DROPPED_VOWEL_COST]).chain(std::iter::repeat(1.0));
    let least_cost: f32 = prices.take(missing as usize).sum();
    least_cost <= allowed_word_cost(subject_len)
}

/// Fewest distinct trigrams (of the words marked at both ends, see `tokens::ngrams`) a query word
/// shares with a subject word of `subject_len` letters and `gram_count` distinct trigrams when their
/// similarity is above zero, both in the same spelling: lets a search pass over candidates that merely
/// share a first syllable without computing a distance. An edit paying in full breaks at most three
/// of the subject's trigrams; the cheaper edits at the end (`CHEAP_END_EDITS`) only its last four.
pub fn least_shared_trigrams(subject_len: usize, gram_count: usize) -> usize {
    let allowed = allowed_word_cost(subject_len);
    let broken = (CHEAP_END_EDITS.iter())
        .filter(|&&(cost, _)| cost <= allowed)
        .map(|&(cost, trigrams)| trigrams + 3 * (allowed - cost).floor() as usize)
        .max()
        .unwrap_or(0);
    gram_count.saturating_sub(broken)
}

/// (least cost, most trigrams broken) of the cheap edits at a word's end: nothing; an appended letter
/// (the trigram holding the end mark); a changed ending letter (three); the letter before the ending
/// dropped and a letter appended (all four trigrams the ending and that letter are in).
const CHEAP_END_EDITS: [(f32, usize); 4] =
    [(0.0, 0), (APPENDED_LETTER_COST, 1), (ENDING_EDIT_COST, 3), (DROPPED_VOWEL_COST + APPENDED_LETTER_COST, 4)];

/// Most a fuzzy match of a subject word of this many letters may cost.
fn allowed_word_cost(subject_len: usize) -> f32 {
    subject_len.saturating_sub(1) as f32 / MAX_EDIT_SHARE as f32
}

/// The cheapest edits that could make up the difference in length.
fn least_word_cost(subject_len: usize, query_len: usize) -> f32 {
    if query_len < subject_len {
        DROPPED_VOWEL_COST * (subject_len - query_len) as f32
    } else {
        APPENDED_LETTER_COST * (query_len - subject_len) as f32
    }
}

/// Edit distance in which replacing or inserting letters within the last `ENDING_CHARS` letters of
/// the subject (up to a third of it) costs half, dropping the letter before them three quarters and
/// appending letters after it a quarter: inflection rewrites endings ("Марта" -> "Марты") and drops
/// the vowel before them ("Pavel" -> "Pavla"), agglutination appends ("Krallığı" -> "Krallığının"). Changes
/// elsewhere (transliteration) and dropping letters of the ending pay in full: a query word that cuts
/// a subject word short ("OpenCV" -> "open") is another word. Above `limit` it returns some cost above
/// `limit`, not necessarily the distance.
fn ending_tolerant_distance(subject: &[char], query: &[char], limit: f32) -> f32 {
    let ending_start = subject.len() - ENDING_CHARS.min(subject.len() / 3);
    // Cost of replacing subject letter `i`, of dropping it, and of inserting a letter after `i`
    // subject letters.
    let replace = |i: usize| if i >= ending_start { ENDING_EDIT_COST } else { 1.0 };
    let delete = |i: usize| if i + 1 == ending_start { DROPPED_VOWEL_COST } else { 1.0 };
    let insert = |i: usize| if i == subject.len() { APPENDED_LETTER_COST } else { replace(i) };
    let mut previous: Vec<f32> = (0..=query.len()).map(|j| j as f32 * insert(0)).collect();
    let mut current = vec![0.0; query.len() + 1];
    for (i, s) in subject.iter().enumerate() {
        current[0] = previous[0] + delete(i);
        for (j, q) in query.iter().enumerate() {
            let substitution = previous[j] + if s == q { 0.0 } else { replace(i) };
            current[j + 1] = substitution.min(previous[j + 1] + delete(i)).min(current[j] + insert(i + 1));
        }
        std::mem::swap(&mut previous, &mut current);
        // No cost falls in later rows: once a whole row is over the limit, so is the distance.
        let least = previous.iter().copied().fold(f32::INFINITY, f32::min);
        if least > limit {
            return least;
        }
    }
    previous[query.len()]
}

/// How well a subject run occurs in a query run, in [0, 1]: the better of an approximate substring
/// (one minus the edit distance to the closest substring relative to the subject's length, one edit
/// per `MAX_EDIT_SHARE` letters beyond the first) and the share of the subject's character pairs found
/// close together (translations reorder words: "ฟื้นฟูอาณาจักร..." -> "อาณาจักร...ที่ได้รับการฟื้นฟู").
/// Runs shorter than `MIN_FUZZY_RUN_CHARS` must occur exactly.
fn run_similarity(subject: &[char], query: &[char], pair_weight: &dyn Fn(CharPair) -> f32) -> f32 {
    let distance = substring_distance(subject, query);
    if subject.len() < MIN_FUZZY_RUN_CHARS {
        return if distance == 0 { 1.0 } else { 0.0 };
    }
    let allowed = (subject.len() - 1) / MAX_EDIT_SHARE;
    let edited = if distance <= allowed { 1.0 - distance as f32 / subject.len() as f32 } else { 0.0 };
    edited.max(pair_coverage(subject, query, pair_weight))
}

/// Least weight of pairs a pair coverage must find: a subject whose pairs are all common (a Thai
/// title of everyday words, "เคาน์ตี้ของคาร่าคารา") is found by its pairs only where they are its own.
/// A pair no other entry has weighs 1.
const MIN_PAIR_EVIDENCE: f32 = 3.0;

/// Two consecutive characters of a run.
pub type CharPair = (char, char);

/// Largest weighted share of the subject's distinct character pairs occurring within a stretch of the
/// query half again as long as the subject. A pair weighs `pair_weight`: pairs that many texts have
/// (in Thai the letters of "ของ", "of") say little about which subject is meant.
fn pair_coverage(subject: &[char], query: &[char], pair_weight: &dyn Fn(CharPair) -> f32) -> f32 {
    let mut pairs: Vec<CharPair> = subject.windows(2).map(|w| (w[0], w[1])).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let weights: Vec<f32> = pairs.iter().map(|&pair| pair_weight(pair)).collect();
    let total: f32 = weights.iter().sum();
    // For every query position, which subject pair starts there.
    let found: Vec<Option<usize>> = query.windows(2).map(|w| pairs.binary_search(&(w[0], w[1])).ok()).collect();
    let stretch = subject.len() + subject.len() / 2 - 1;
    let mut counts = vec![0usize; pairs.len()];
    let (mut covered, mut best) = (0.0f32, 0.0f32);
    for (end, pair) in found.iter().enumerate() {
        if let Some(p) = *pair {
            counts[p] += 1;
            if counts[p] == 1 {
                covered += weights[p];
            }
        }
        if end >= stretch {
            if let Some(p) = found[end - stretch] {
                counts[p] -= 1;
                if counts[p] == 0 {
                    covered -= weights[p];
                }
            }
        }
        best = best.max(covered);
    }
    if total > 0.0 && best >= MIN_PAIR_EVIDENCE {
        (best / total).min(1.0)
    } else {
        0.0
    }
}

/// Smallest edit distance between `needle` and any substring of `haystack` (free start and end).
fn substring_distance(needle: &[char], haystack: &[char]) -> usize {
    let mut previous = vec![0; haystack.len() + 1];
    let mut current = vec![0; haystack.len() + 1];
    for (i, cn) in needle.iter().enumerate() {
        current[0] = i + 1;
        for (j, ch) in haystack.iter().enumerate() {
            let substitution = previous[j] + usize::from(cn != ch);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.into_iter().min().unwrap_or(needle.len())
}

/// Jaccard similarity of two sets of strings, `a` listed without repeats.
pub fn jaccard(a: &[String], b: &HashSet<String>) -> f32 {
    let common = a.iter().filter(|item| b.contains(*item)).count();
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f32 / union as f32
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::{
        allowed_word_cost, ending_tolerant_distance, least_shared_trigrams, letter_set, missing_letters_may_match,
        word_lengths_may_match, word_similarity,
    };
    use crate::text::tokens::{ngrams, TokenKind};

    fn chars(word: &str) -> Vec<char> {
        word.chars().collect()
    }

    /// The search's shortcuts (the length filter, stopping the distance at its limit) never change a
    /// similarity: compared with the full distance over pairs of inflected, respelled and unrelated words.
    #[test]
    fn shortcuts_agree_with_the_full_distance() {
        let words: Vec<&str> = "curie curies kurie marta marty pavel pavla krallığı krallığının shmavonyan \
            shmavonyana smavonian shakespeare opencv open ab abc countryman country"
            .split_whitespace()
            .collect();
        let mut similar = 0;
        for subject in words.iter().map(|w| chars(w)) {
            for query in words.iter().map(|w| chars(w)) {
                let full = ending_tolerant_distance(&subject, &query, f32::INFINITY);
                let allowed = allowed_word_cost(subject.len());
                let limited = ending_tolerant_distance(&subject, &query, allowed);
                if full <= allowed {
                    similar += 1;
                    assert_eq!(limited, full, "{subject:?} {query:?}");
                    assert!(word_lengths_may_match(subject.len(), query.len()), "{subject:?} {query:?}");
                } else {
                    assert!(limited > allowed, "{subject:?} {query:?}");
                }
                if !word_lengths_may_match(subject.len(), query.len()) {
                    assert_eq!(word_similarity(&subject, &query, false), 0.0);
                }
            }
        }
        assert!(similar > words.len(), "some distinct words must resemble each other: {similar}");
    }

    /// The trigram bound never passes over a word that resembles the subject: random words of a small
    /// alphabet (so that trigrams repeat) against copies with random edits anywhere, many at the end.
    #[test]
    fn resembling_words_share_at_least_the_bound_of_trigrams() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut resembling = 0;
        for _ in 0..200_000 {
            let length = rng.random_range(1..14);
            let subject: Vec<char> = (0..length).map(|_| rng.random_range('a'..='d')).collect();
            let mut query = subject.clone();
            for _ in 0..rng.random_range(0..4) {
                let at_end = rng.random_bool(0.5);
                let position = if at_end || query.is_empty() { query.len() } else { rng.random_range(0..query.len()) };
                let letter = rng.random_range('a'..='d');
                match rng.random_range(0..3) {
                    0 if position < query.len() => query[position] = letter,
                    1 if position < query.len() => drop(query.remove(position)),
                    _ => query.insert(position, letter),
                }
                if at_end && position > 0 && rng.random_bool(0.5) {
                    query[position - 1] = letter;
                }
            }
            if query.is_empty() || word_similarity(&subject, &query, false) == 0.0 {
                continue;
            }
            resembling += 1;
            let (subject_grams, query_grams) = (ngrams(TokenKind::Word, &subject), ngrams(TokenKind::Word, &query));
            let shared = subject_grams.iter().filter(|g| query_grams.contains(g)).count();
            let least = least_shared_trigrams(subject.len(), subject_grams.len());
            assert!(shared >= least, "{subject:?} {query:?}: {shared} shared, bound {least}");
        }
        assert!(resembling > 10_000, "too few resembling pairs to test the bound: {resembling}");
    }

    /// The same for the letters a subject word may lack in a query word it resembles: random words over
    /// eight letters (so that letters go missing) against copies with random edits, short subjects too.
    #[test]
    fn resembling_words_lack_no_more_letters_than_the_bound() {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut resembling, mut passed_over) = (0, 0);
        for _ in 0..200_000 {
            let length = rng.random_range(1..14);
            let subject: Vec<char> = (0..length).map(|_| rng.random_range('a'..='h')).collect();
            let mut query = subject.clone();
            for _ in 0..rng.random_range(0..4) {
                let position = match rng.random_bool(0.5) || query.is_empty() {
                    true => query.len().saturating_sub(rng.random_range(0..3)),
                    false => rng.random_range(0..query.len()),
                };
                let letter = rng.random_range('a'..='h');
                match rng.random_range(0..3) {
                    0 if position < query.len() => query[position] = letter,
                    1 if position < query.len() => drop(query.remove(position)),
                    _ => query.insert(position, letter),
                }
            }
            let missing = (letter_set(&subject) & !letter_set(&query)).count_ones();
            let may_match = missing_letters_may_match(subject.len(), missing);
            passed_over += usize::from(!may_match);
            if query.is_empty() || word_similarity(&subject, &query, rng.random_bool(0.2)) == 0.0 {
                continue;
            }
            resembling += 1;
            assert!(may_match, "{subject:?} {query:?}: {missing} letters missing");
        }
        assert!(resembling > 10_000 && passed_over > 10_000, "{resembling} resembling, {passed_over} passed over");
    }
}

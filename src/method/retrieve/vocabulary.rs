//! The distinct tokens of the indexed subjects and prompts, with how often entries use them and an
//! n-gram index to find the ones resembling a query token.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{stable_digest, RetrievalSettings};
use crate::text::distance::{
    least_shared_trigrams, letter_set, matches_only_as_spelled, missing_letters_may_match, token_similarity,
    word_lengths_may_match, Candidate, CharPair,
};
use crate::text::normalize::{is_vietnamese, loose_spelling};
use crate::text::tokens::{ngrams, Gram, Token, TokenKind};

#[derive(Serialize, Deserialize)]
pub(super) struct VocabularyToken {
    pub(super) token: Token,
    /// Letters of its loose spelling (see `loose_spelling`; the spellings are in `Vocabulary::spellings`).
    pub(super) letters: usize,
    /// Whether the token is in the n-gram index, found by resemblance (see `Vocabulary::add`).
    fuzzy: bool,
    /// (subject slot, position in the subject) of every occurrence.
    pub(super) occurrences: Vec<(usize, usize)>,
    /// Number of entries with the token in a subject.
    pub(super) entry_count: usize,
    /// Number of entries with the token in a prompt: question words and articles are common.
    pub(super) prompt_count: usize,
    /// How much finding the token says (see `VocabularyToken::refresh_weight`).
    pub(super) weight: f32,
}

impl VocabularyToken {
    /// In how many entries' subjects or prompts the token occurs.
    pub(super) fn frequency(&self) -> usize {
        self.entry_count.max(self.prompt_count).max(1)
    }

    /// A token weighs its letters (a long name says more than "of"), less if it is common.
    pub(super) fn refresh_weight(&mut self) {
        self.weight = self.letters as f32 / (1.0 + (self.frequency() as f32).ln());
    }
}

/// What the search needs to know of a token to compare it with a query token, kept apart from the
/// tokens (32 bytes, within one cache line): a query word shares an n-gram with thousands of vocabulary
/// words at 10,000 entries, and reading each one's `VocabularyToken`, then its spelling, then its text
/// missed the processor's caches most of the time.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct TokenBrief {
    /// Where its loose spelling starts in `Vocabulary::spellings`; its Latin spelling follows, unless
    /// the two are the same (`romanized` false).
    at: u32,
    /// Lengths of the loose and Latin spellings.
    loose_len: u16,
    latin_len: u16,
    /// Number of distinct n-grams of the Latin spelling.
    gram_count: u16,
    /// Characters of the token as written, up to `u16::MAX`.
    text_chars: u16,
    /// Whether the Latin spelling differs from the loose one: the token is in another script.
    romanized: bool,
    /// Whether the token is a Vietnamese word (see `is_vietnamese`).
    vietnamese: bool,
    /// `letter_set`s of the loose and Latin spellings.
    loose_letters: u64,
    latin_letters: u64,
}

/// Distinct subject and prompt tokens, with an n-gram index to find the ones resembling a query token.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Vocabulary {
    ids: HashMap<Token, usize>,
    pub(super) tokens: Vec<VocabularyToken>,
    /// One per token, in the same order.
    briefs: Vec<TokenBrief>,
    /// The tokens' loose and Latin spellings (see `TokenBrief::at`), each cut to `u16::MAX` letters.
    spellings: Vec<char>,
    /// N-gram of `latin`, keyed with `gram_partition` -> ids of the fuzzy tokens that have it.
    grams: HashMap<(char, Gram), Vec<usize>>,
    /// Digest of a spelling (Latin, and loose where it differs) -> ids of the fuzzy words spelled so: a
    /// query word that matches only as spelled finds them here (see `Vocabulary::similar`).
    spelled: HashMap<u64, Vec<usize>>,
    /// Character pair of a run (in loose spelling) -> number of entries whose runs have it.
    pair_entries: HashMap<CharPair, usize>,
}

impl Vocabulary {
    /// Records one occurrence of a token and returns its id. Tokens of subjects are found by
    /// resemblance (`fuzzy`); a prompt's words must be there as written, which keeps the search over
    /// the many prompt words fast, but not its runs: in Thai or Chinese one run holds a whole clause,
    /// and a rephrasing that changes one word of it ("ได้ชื่อว่า" -> "มีชื่อว่า") would lose the prompt.
    pub(super) fn add(&mut self, token: &Token, slot: usize, position: usize, fuzzy: bool) -> usize {
        let id = self.id(token);
        let vocabulary_token = &mut self.tokens[id];
        vocabulary_token.occurrences.push((slot, position));
        if fuzzy && !vocabulary_token.fuzzy {
            vocabulary_token.fuzzy = true;
            let (loose, latin) = (self.loose(id), self.latin(id));
            let partition = gram_partition(token.kind, latin);
            let grams = ngrams(token.kind, latin);
            let mut digests = Vec::new();
            if token.kind == TokenKind::Word {
                digests.push(stable_digest(latin));
                if loose != latin {
                    digests.push(stable_digest(loose));
                }
            }
            for gram in grams {
                self.grams.entry((partition, gram)).or_default().push(id);
            }
            for digest in digests {
                self.spelled.entry(digest).or_default().push(id);
            }
        }
        id
    }

    /// The id of a token, added to the vocabulary if new.
    pub(super) fn id(&mut self, token: &Token) -> usize {
        match self.ids.get(token) {
            Some(&id) => id,
            None => {
                let id = self.tokens.len();
                // Spellings are cut to `u16::MAX` letters: no real word or run is that long.
                let length = |count: usize| count.min(u16::MAX.into()) as u16;
                let cut = |mut spelling: Vec<char>| {
                    spelling.truncate(u16::MAX.into());
                    spelling
                };
                let (loose, latin) = (cut(loose_spelling(token, false)), cut(loose_spelling(token, true)));
                let romanized = latin != loose;
                let at = u32::try_from(self.spellings.len()).expect("the subject index holds under 4 billion letters");
                self.spellings.extend(&loose);
                if romanized {
                    self.spellings.extend(&latin);
                }
                self.briefs.push(TokenBrief {
                    at,
                    loose_len: length(loose.len()),
                    latin_len: length(latin.len()),
                    gram_count: length(ngrams(token.kind, &latin).len()),
                    text_chars: length(token.text.chars().count()),
                    romanized,
                    vietnamese: is_vietnamese(&token.text),
                    loose_letters: letter_set(&loose),
                    latin_letters: letter_set(&latin),
                });
                self.tokens.push(VocabularyToken {
                    token: token.clone(),
                    fuzzy: false,
                    letters: loose.len(),
                    occurrences: Vec::new(),
                    entry_count: 0,
                    prompt_count: 0,
                    weight: 0.0,
                });
                self.ids.insert(token.clone(), id);
                id
            }
        }
    }

    /// Whether every token id it holds is below `tokens` and names the token it is kept for.
    pub(super) fn ids_within(&self, tokens: usize) -> bool {
        self.tokens.len() == tokens
            && self.briefs.len() == tokens
            && self.briefs.iter().all(|b| {
                let latin_len = if b.romanized { b.latin_len } else { 0 };
                b.at as usize + usize::from(b.loose_len) + usize::from(latin_len) <= self.spellings.len()
            })
            && self.ids.iter().all(|(token, &id)| self.tokens.get(id).is_some_and(|t| &t.token == token))
            && self.grams.values().chain(self.spelled.values()).flatten().all(|&id| id < tokens)
    }

    /// The letters of the tokens `ids` in loose spelling.
    pub(super) fn letters(&self, ids: &[usize]) -> u32 {
        let letters: usize = ids.iter().map(|&id| self.tokens[id].letters).sum();
        letters.try_into().unwrap_or(u32::MAX)
    }

    /// A token's loose spelling (see `loose_spelling`).
    fn loose(&self, id: usize) -> &[char] {
        let brief = &self.briefs[id];
        let at = brief.at as usize;
        &self.spellings[at..at + usize::from(brief.loose_len)]
    }

    /// A token's loose spelling in Latin letters, for finding similar tokens and comparing across scripts.
    fn latin(&self, id: usize) -> &[char] {
        let brief = &self.briefs[id];
        match brief.romanized {
            true => {
                let at = brief.at as usize + usize::from(brief.loose_len);
                &self.spellings[at..at + usize::from(brief.latin_len)]
            }
            false => self.loose(id),
        }
    }

    /// The distinct character pairs of the runs among `ids`, in loose spelling.
    pub(super) fn run_pairs(&self, ids: impl IntoIterator<Item = usize>) -> Vec<CharPair> {
        let runs = ids.into_iter().filter(|&id| self.tokens[id].token.kind == TokenKind::Run);
        let mut pairs: Vec<CharPair> = runs.flat_map(|id| self.loose(id).windows(2).map(|w| (w[0], w[1]))).collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// Counts (or, `added` false, uncounts) one entry's run pairs.
    pub(super) fn count_pairs(&mut self, pairs: &[CharPair], added: bool) {
        for pair in pairs {
            let count = self.pair_entries.entry(*pair).or_default();
            *count = if added { *count + 1 } else { count.saturating_sub(1) };
        }
    }

    /// How much finding a run pair counts: less the more entries' runs have it, as a token's weight.
    fn pair_weight(&self, pair: CharPair) -> f32 {
        let entries = self.pair_entries.get(&pair).copied().unwrap_or_default().max(1);
        1.0 / (1.0 + (entries as f32).ln())
    }

    /// The id of a token spelled exactly so, if it is in the vocabulary.
    pub(super) fn exact_id(&self, token: &Token) -> Option<usize> {
        self.ids.get(token).copied()
    }

    /// Vocabulary tokens resembling `query_token`, with their similarity. `shared_grams` is scratch
    /// space of one counter per vocabulary token, all zero before and after.
    pub(super) fn similar(
        &self,
        query_token: &Token,
        settings: &RetrievalSettings,
        shared_grams: &mut [u32],
    ) -> Vec<(usize, f32)> {
        let exact = self.exact_id(query_token);
        let mut similar: Vec<(usize, f32)> = exact.map(|id| (id, 1.0)).into_iter().collect();
        if query_token.kind == TokenKind::Number {
            return similar;
        }
        let query = QuerySpelling::new(query_token, settings);
        let mut judge = |id: usize, shared: Option<usize>| {
            if Some(id) != exact {
                if let Some(similarity) = self.similarity(id, shared, &query, settings) {
                    similar.push((id, similarity));
                }
            }
        };
        if query.only_as_spelled {
            // Thousands of tokens share an n-gram with a short word ("de", "the"); those spelled as it is
            // are looked up. They are in its n-gram partition (same first letter) as a scan would find them.
            let mut ids: Vec<usize> = [&query.loose, &query.latin]
                .into_iter()
                .flat_map(|spelling| self.spelled.get(&stable_digest(spelling)).into_iter().flatten().copied())
                .filter(|&id| gram_partition(TokenKind::Word, self.latin(id)) == query.partition)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.into_iter().for_each(|id| judge(id, None));
            return similar;
        }
        let mut touched = Vec::new();
        let mut query_grams = ngrams(query_token.kind, &query.latin);
        if query_token.kind == TokenKind::Run {
            // One-character subject runs are indexed by that character alone.
            query_grams.extend(query.latin.iter().map(|&c| [c, '\0', '\0']));
            query_grams.sort_unstable();
            query_grams.dedup();
        }
        for gram in query_grams {
            for &id in self.grams.get(&(query.partition, gram)).into_iter().flatten() {
                if shared_grams[id] == 0 {
                    touched.push(id);
                }
                shared_grams[id] += 1;
            }
        }
        for id in touched {
            let shared = std::mem::take(&mut shared_grams[id]) as usize;
            judge(id, Some(shared));
        }
        similar
    }

    /// How much vocabulary token `id` resembles the query token, if enough to count. `shared`: how many
    /// n-grams of their Latin spellings they share, to pass over most tokens before comparing them;
    /// `None` when the token was found by its spelling.
    fn similarity(
        &self,
        id: usize,
        shared: Option<usize>,
        query: &QuerySpelling,
        settings: &RetrievalSettings,
    ) -> Option<f32> {
        let brief = self.briefs[id];
        // Words of one script compare as written: romanizing blurs Cyrillic endings ("-ая", "-ей").
        let same_script = brief.romanized == query.romanized;
        let (subject_len, query_spelling, missing_letters) = match same_script {
            true => (brief.loose_len, &query.loose, brief.loose_letters & !query.loose_letters),
            false => (brief.latin_len, &query.latin, brief.latin_letters & !query.latin_letters),
        };
        // Trigrams are of the Latin spelling: they bound the distance only where it is compared in it.
        let compared_as_grams = !(same_script && brief.romanized);
        // A run matching within the allowed edits or pair coverage keeps at least half of its
        // character pairs; a word must be of a length it could be respelled to, share the trigrams
        // such a respelling keeps, lack few of the query's letters, and keep its first letter (as every
        // word in the query's n-gram partition does).
        let comparable = match (query.token.kind, shared) {
            (_, None) => true,
            (TokenKind::Run, Some(shared)) => 2 * shared >= usize::from(brief.gram_count),
            (_, Some(shared)) => {
                word_lengths_may_match(subject_len.into(), query_spelling.len())
                    && missing_letters_may_match(subject_len.into(), missing_letters.count_ones())
                    && (!compared_as_grams
                        || shared >= least_shared_trigrams(subject_len.into(), brief.gram_count.into()))
            }
        };
        if !comparable || subject_len == 0 || query_spelling.is_empty() {
            return None;
        }
        let subject = if same_script { self.loose(id) } else { self.latin(id) };
        let max_exact = settings.exact_match_max_chars;
        let candidate = match query.token.kind {
            TokenKind::Run => Candidate::Run { text: &self.tokens[id].token.text },
            _ => Candidate::Word { short: usize::from(brief.text_chars) <= max_exact, vietnamese: brief.vietnamese },
        };
        let pair_weight = |pair| self.pair_weight(pair);
        let similarity =
            token_similarity(candidate, subject, query.token, query_spelling, query.only_as_spelled, &pair_weight);
        // A token no entry uses any more (its entries were removed) resembles nothing.
        (similarity >= settings.min_token_similarity && !self.tokens[id].occurrences.is_empty()).then_some(similarity)
    }
}

/// A query token in the spellings it is compared in.
struct QuerySpelling<'a> {
    token: &'a Token,
    loose: Vec<char>,
    latin: Vec<char>,
    romanized: bool,
    partition: char,
    loose_letters: u64,
    latin_letters: u64,
    /// See `matches_only_as_spelled`.
    only_as_spelled: bool,
}

impl<'a> QuerySpelling<'a> {
    fn new(token: &'a Token, settings: &RetrievalSettings) -> Self {
        let (loose, latin) = (loose_spelling(token, false), loose_spelling(token, true));
        let partition = gram_partition(token.kind, &latin);
        let (loose_letters, latin_letters) = (letter_set(&loose), letter_set(&latin));
        Self {
            token,
            romanized: latin != loose,
            loose,
            latin,
            partition,
            loose_letters,
            latin_letters,
            only_as_spelled: matches_only_as_spelled(token, settings.exact_match_max_chars),
        }
    }
}

/// Which part of the n-gram index a token is in. A word resembles only words with its first letter (see
/// `Vocabulary::similar`), so words are kept apart by it and a query word never visits the thousands of
/// words that merely share an ending with it. Runs compare regardless of their first character.
fn gram_partition(kind: TokenKind, latin: &[char]) -> char {
    match (kind, latin.first()) {
        (TokenKind::Word, Some(&first)) => first,
        _ => '\0',
    }
}

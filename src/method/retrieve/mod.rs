//! Finding the cache entries whose subject a query mentions.
//!
//! An entry is keyed by its subject in every language (plus aliases). A query rarely spells a subject
//! exactly as stored: Russian and Czech inflect names ("Шмавона Шмавоняна"), transliterations differ
//! ("Šmavon", "Chmavon", "Shmavon"), translations reorder or replace words. Both sides are lowercased
//! and cut into tokens: words of scripts written with spaces, numbers, and runs of scripts written
//! without spaces (Chinese, Japanese, Thai). A subject word matches a query word if a loose spelling
//! (no diacritics, transliteration variants merged, Cyrillic, Greek, Armenian and Georgian romanized
//! when the scripts differ) is within a few edits, where changed or added endings cost less (not in
//! Vietnamese, which does not inflect); a subject run matches if it occurs in a query run nearly as
//! is, or with its character pairs close together (pairs that many entries' runs have count less). A
//! subject's score is the weighted share of its tokens found within a few consecutive query tokens; a
//! token weighs its letters, less when many entries' subjects or prompts have it (articles, question
//! words). An entry's prompts are matched the same way, as the subject named in the author's words.
//! A subject the query writes in another script by sound rather than by letter ("דרל ספנסר" for
//! "Darrell Spencer") is found by its consonants ([`sounds`]). Entries sharing a subject are told
//! apart by how much the rest of the query resembles their prompts.
//!
//! Tokens, loose spellings and token distances are [`crate::text`]'s; this module is the index over
//! them ([`SubjectIndex`]) and how it scores a subject against a query.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Mutex;

use color_eyre::eyre::{bail, WrapErr};

use serde::{Deserialize, Serialize};

use crate::text::clitics::without_clitics;
use crate::text::distance::{jaccard, CharPair};
use crate::text::normalize::{contains_ignoring_case, is_vietnamese};
use crate::text::tokens::{content_features, token_key, tokenize, tokenize_located, Token, TokenKind};
use crate::Result;
use sounds::SoundIndex;
use vocabulary::{Vocabulary, VocabularyToken};

mod sounds;
#[cfg(test)]
mod tests;
mod vocabulary;

/// How retrieval decides that a query mentions a subject. The defaults were chosen on the first half
/// of the MzsRE dev records (see tests/retrieval_dev.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalSettings {
    /// An entry fires when one of its subjects scores at least this: the weighted share of the
    /// subject's tokens found in the query, each counted by its similarity. Default 0.8.
    pub threshold: f32,
    /// A subject of one word fires only at this score: with no other word to confirm it, an inflected
    /// form of a common word ("Verás" and "verse") would otherwise fire. Default 0.85.
    pub single_word_threshold: f32,
    /// A subject found only in part still fires at this score when at least `partial_min_words` of
    /// its uncommon words of five or more letters are found: translated titles keep some words and
    /// replace others ("Галицкое объединение регионалистов" for "Галицкая ассоциация регионалистов").
    /// Defaults 0.6 and 2.
    pub partial_threshold: f32,
    pub partial_min_words: usize,
    /// Token pairs less similar than this do not count as a match at all. Default 0.6.
    pub min_token_similarity: f32,
    /// Words of at most this many characters are never respelled (a three-letter subject word may
    /// still gain an ending: "Гар" -> "Гаром"); whole subjects this short must match exactly.
    /// Default 3.
    pub exact_match_max_chars: usize,
    /// How many query tokens beyond the subject's own count a mention may spread over (translations
    /// add words: "Hanthawaddy Krallığı" -> "Restore Edilen Hanthawaddy Krallığı"). Default 2.
    pub window_slack: usize,
    /// Whether an entry's prompts that do not hold one of its subjects as written count as further
    /// ways of naming its subject, matched like subjects (never in part): a prompt names the subject
    /// as its author did, which a translated subject may not ("Motýlí hvězdokupa" for "Cluster
    /// motýlů"). Words many entries' prompts share ("what", "country") weigh little, so the
    /// prompt's rare words must be there. Default true.
    pub match_prompts: bool,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            threshold: 0.8,
            single_word_threshold: 0.85,
            partial_threshold: 0.6,
            partial_min_words: 2,
            min_token_similarity: 0.6,
            exact_match_max_chars: 3,
            window_slack: 2,
            match_prompts: true,
        }
    }
}

/// One entry that a query mentions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub entry_id: String,
    /// How completely the query mentions `matched_subject`, in [0, 1].
    pub score: f32,
    /// The stored subject (or alias, or prompt) that matched best.
    pub matched_subject: String,
    /// The words of the query that name `matched_subject`, as written there ("Шмавон Шмавонян" for
    /// "Shmavon Shmavonyan"); empty when a prompt matched, or the subject was found within a run of a
    /// script written without spaces (a run holds more than the name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mention: String,
    /// How much the rest of the query resembles the entry's prompts, in [0, 1]: tells apart entries
    /// that share a subject.
    #[serde(default)]
    pub prompt_similarity: f32,
    /// How much the query asks the entry's fact (see [`super::scope`]); `None` until scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_score: Option<f32>,
    /// How much it resembles questions about the subject's other relations instead (see
    /// [`super::scope::ScopeScore`]); `None` until scored or when the entry has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_relations_score: Option<f32>,
    /// How much it resembles the questions the user said do not ask the entry's fact (see
    /// [`super::scope::TaughtQuestions`]); `None` until scored or when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taught_not_asked_score: Option<f32>,
}

/// An index over the subjects and prompts of cache entries. It can be saved ([`SubjectIndex::to_bytes`])
/// and brought up to date with the entries it should hold ([`SubjectIndex::sync`]), so that a large
/// cache opens without tokenizing and respelling every subject again.
#[derive(Serialize, Deserialize)]
pub struct SubjectIndex {
    settings: RetrievalSettings,
    entries: HashMap<String, Entry>,
    /// Subject slots; `None` once the entry was removed.
    subjects: Vec<Option<IndexedSubject>>,
    /// Per subject slot, what a search reads of thousands of slots, apart from `subjects`.
    slot_briefs: Vec<SlotBrief>,
    vocabulary: Vocabulary,
    /// The subjects (not prompts) as they sound, for queries writing them in another script.
    sounds: SoundIndex,
    /// Reused by every search: its per-token and per-slot arrays are as long as the index is large.
    #[serde(skip)]
    scratch: Mutex<SearchScratch>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct SlotBrief {
    /// Letters of the subject's tokens in loose spelling: what their weights are made of.
    letters: u32,
    /// Every token must match exactly: the subject is too short for fuzzy matching to be safe.
    exact_only: bool,
}

/// Working arrays of a search, all zero (false) between searches.
#[derive(Default)]
struct SearchScratch {
    /// Per vocabulary token: n-grams shared with the query token being looked up.
    shared_grams: Vec<u32>,
    /// Per subject slot: the weight of its tokens the query may match.
    reachable: Vec<f32>,
    /// Per subject slot: whether it can reach a firing score.
    candidate: Vec<bool>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Digest of the subjects and prompts the entry was indexed with (see [`SubjectIndex::sync`]).
    source: u64,
    subject_slots: Vec<usize>,
    /// Distinct vocabulary ids of the subjects, counted in `VocabularyToken::entry_count`.
    subject_tokens: Vec<usize>,
    /// Normalized subject texts: entries with one in common are about the same thing.
    subject_keys: Vec<String>,
    /// Features of each prompt with the subject's own features removed, so only the relation remains.
    prompt_features: Vec<Vec<String>>,
    /// Distinct vocabulary ids of the prompts, counted in `VocabularyToken::prompt_count`.
    prompt_tokens: Vec<usize>,
    /// Distinct character pairs of the subjects' and prompts' runs, counted in the vocabulary.
    run_pairs: Vec<CharPair>,
}

#[derive(Serialize, Deserialize)]
struct IndexedSubject {
    entry_id: String,
    original: String,
    /// Vocabulary ids, in subject order.
    tokens: Vec<usize>,
    /// Whether the subject may fire when found only in part (`RetrievalSettings::partial_threshold`).
    /// Not a prompt, matched as a whole: it names the subject as the user wrote it. Not a Vietnamese
    /// subject: Vietnamese puts spaces between syllables, and a few syllables of a title ("Tương
    /// Đương", "equivalent") are common words, not the rare words a partial match stands on.
    partial_allowed: bool,
    /// One of the entry's prompts, kept to be matched as a whole.
    prompt: bool,
}

/// A subject token found in the query.
struct TokenMatch {
    subject_position: usize,
    query_position: usize,
    similarity: f32,
}

/// Words at least this similar count as found for `RetrievalSettings::partial_min_words`.
const STRONG_SIMILARITY: f32 = 0.8;
/// Words shorter than this, or in more entries than `PARTIAL_MAX_FREQUENCY`, are too common to count
/// for `RetrievalSettings::partial_min_words`.
const PARTIAL_MIN_LETTERS: usize = 5;
const PARTIAL_MAX_FREQUENCY: usize = 2;
/// A subject matched only in part needs at least this many matched letters (weighted by similarity):
/// a lone short word ("Đép" in "Sông Đép") is too common to stand for the subject.
const MIN_EVIDENCE_CHARS: f32 = 4.0;
/// Share of the lowest firing weight below which a subject is not scored at all: a little under 1 so
/// that summing the same weights in another order never drops a subject that reaches it.
const PRUNE_MARGIN: f32 = 1e-3;

impl SubjectIndex {
    pub fn new(settings: RetrievalSettings) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
            subjects: Vec::new(),
            slot_briefs: Vec::new(),
            vocabulary: Vocabulary::default(),
            sounds: SoundIndex::default(),
            scratch: Mutex::default(),
        }
    }

    /// Indexes an entry; an entry already indexed under `entry_id` is replaced.
    pub fn insert(&mut self, entry_id: &str, subjects: &[String], prompts: &[String]) {
        self.remove(entry_id);
        let mut entry = Entry {
            source: source_digest(subjects, prompts),
            subject_slots: Vec::new(),
            subject_tokens: Vec::new(),
            subject_keys: Vec::new(),
            prompt_features: Vec::new(),
            prompt_tokens: Vec::new(),
            run_pairs: Vec::new(),
        };
        let mut subject_features = HashSet::new();
        for subject in subjects {
            let tokens = tokenize(subject);
            let key = token_key(&tokens);
            if tokens.is_empty() || entry.subject_keys.contains(&key) {
                continue;
            }
            entry.subject_keys.push(key.clone());
            subject_features.extend(content_features(&tokens));
            let slot = self.subjects.len();
            let ids: Vec<usize> =
                tokens.iter().enumerate().map(|(position, t)| self.vocabulary.add(t, slot, position, true)).collect();
            entry.subject_tokens.extend(&ids);
            let exact_only = key.chars().filter(|c| *c != ' ').count() <= self.settings.exact_match_max_chars;
            self.slot_briefs.push(SlotBrief { letters: self.vocabulary.letters(&ids), exact_only });
            self.sounds.insert(slot, &tokens);
            self.subjects.push(Some(IndexedSubject {
                entry_id: entry_id.to_string(),
                original: subject.clone(),
                tokens: ids,
                partial_allowed: !tokens.iter().any(|t| is_vietnamese(&t.text)),
                prompt: false,
            }));
            entry.subject_slots.push(slot);
        }
        let mut prompt_keys = HashSet::new();
        for prompt in prompts {
            let tokens = tokenize(prompt);
            let mut features: Vec<String> = content_features(&tokens).difference(&subject_features).cloned().collect();
            features.sort_unstable();
            entry.prompt_features.push(features);
            // A prompt that holds a subject as written names it no otherwise than the subject does; as a
            // key it would only add its other words, and the same question about another subject
            // ("In which fictional universe does X exist?" for the Aulë entry) would match them.
            let names_a_subject =
                subjects.iter().map(|s| s.trim()).any(|s| !s.is_empty() && contains_ignoring_case(prompt, s));
            if self.settings.match_prompts
                && !names_a_subject
                && !tokens.is_empty()
                && prompt_keys.insert(token_key(&tokens))
            {
                let slot = self.subjects.len();
                let ids: Vec<usize> = tokens
                    .iter()
                    .enumerate()
                    .map(|(position, t)| self.vocabulary.add(t, slot, position, t.kind == TokenKind::Run))
                    .collect();
                self.slot_briefs.push(SlotBrief { letters: self.vocabulary.letters(&ids), exact_only: false });
                self.subjects.push(Some(IndexedSubject {
                    entry_id: entry_id.to_string(),
                    original: prompt.clone(),
                    tokens: ids,
                    partial_allowed: false,
                    prompt: true,
                }));
                entry.subject_slots.push(slot);
            }
            entry.prompt_tokens.extend(tokens.iter().map(|t| self.vocabulary.id(t)));
        }
        // Sorted lists rather than sets: a saved index decodes them without hashing.
        for ids in [&mut entry.subject_tokens, &mut entry.prompt_tokens] {
            ids.sort_unstable();
            ids.dedup();
        }
        for &id in &entry.subject_tokens {
            self.vocabulary.tokens[id].entry_count += 1;
        }
        for &id in &entry.prompt_tokens {
            self.vocabulary.tokens[id].prompt_count += 1;
        }
        for &id in entry.subject_tokens.iter().chain(&entry.prompt_tokens) {
            self.vocabulary.tokens[id].refresh_weight();
        }
        entry.run_pairs = self.vocabulary.run_pairs(entry.subject_tokens.iter().chain(&entry.prompt_tokens).copied());
        self.vocabulary.count_pairs(&entry.run_pairs, true);
        self.entries.insert(entry_id.to_string(), entry);
    }

    /// Makes the index hold exactly `entries` (id, subjects, prompts): entries it lacks or indexed
    /// with other subjects or prompts are (re)indexed, entries not listed are removed. Returns how
    /// many entries changed.
    pub fn sync<'a>(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a [String], &'a [String])>) -> usize {
        let mut listed: HashSet<&str> = HashSet::new();
        let mut changed = 0;
        for (id, subjects, prompts) in entries {
            listed.insert(id);
            if self.entries.get(id).is_none_or(|e| e.source != source_digest(subjects, prompts)) {
                self.insert(id, subjects, prompts);
                changed += 1;
            }
        }
        let unlisted: Vec<String> = self.entries.keys().filter(|id| !listed.contains(id.as_str())).cloned().collect();
        for id in &unlisted {
            self.remove(id);
        }
        changed + unlisted.len()
    }

    /// The index in a compact binary form, for [`SubjectIndex::from_bytes`]: its format number, then
    /// the index.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = postcard::to_stdvec(&SAVED_INDEX_FORMAT)?;
        bytes.extend(postcard::to_stdvec(self).wrap_err("cannot encode the subject index")?);
        Ok(bytes)
    }

    /// An index saved by [`SubjectIndex::to_bytes`] with the same `settings` (an index built with
    /// other settings, by another format, or damaged is refused: build it anew).
    pub fn from_bytes(bytes: &[u8], settings: &RetrievalSettings) -> Result<Self> {
        let unreadable = "the saved subject index is unreadable";
        let (format, rest): (u32, _) = postcard::take_from_bytes(bytes).wrap_err(unreadable)?;
        if format != SAVED_INDEX_FORMAT {
            bail!("the saved subject index has format {format}, this version reads {SAVED_INDEX_FORMAT}");
        }
        let (index, rest): (Self, _) = postcard::take_from_bytes(rest).wrap_err(unreadable)?;
        if !rest.is_empty() {
            bail!("{unreadable}: {} bytes after its end", rest.len());
        }
        if &index.settings != settings {
            bail!("the saved subject index was built with other retrieval settings");
        }
        index.check()?;
        Ok(index)
    }

    /// Every id the index holds points at a token or subject that exists, and every occurrence of a
    /// token at the place in its subject that holds it: a saved index that decodes but does not hold
    /// together (a bit flipped in a length) must not panic a search.
    fn check(&self) -> Result<()> {
        let tokens = self.vocabulary.tokens.len();
        let slots = self.subjects.len();
        let subjects_ok = self.slot_briefs.len() == slots
            && self.subjects.iter().flatten().all(|s| s.tokens.iter().all(|&id| id < tokens));
        let entries_ok = self.entries.values().all(|e| {
            e.subject_slots.iter().all(|&slot| slot < slots)
                && e.subject_tokens.iter().chain(&e.prompt_tokens).all(|&id| id < tokens)
        });
        let occurrences_ok = self.vocabulary.tokens.iter().enumerate().all(|(id, token)| {
            token.occurrences.iter().all(|&(slot, position)| {
                matches!(self.subjects.get(slot), Some(Some(s)) if s.tokens.get(position) == Some(&id))
            })
        });
        let sounds_ok = self.sounds.holds_together(|slot| matches!(self.subjects.get(slot), Some(Some(_))));
        if !(subjects_ok && entries_ok && occurrences_ok && sounds_ok && self.vocabulary.ids_within(tokens)) {
            bail!("the saved subject index does not hold together");
        }
        Ok(())
    }

    /// Forgets an entry; unknown ids are ignored.
    pub fn remove(&mut self, entry_id: &str) {
        let Some(entry) = self.entries.remove(entry_id) else { return };
        for slot in entry.subject_slots {
            self.sounds.remove(slot);
            if let Some(subject) = self.subjects[slot].take() {
                for id in subject.tokens {
                    self.vocabulary.tokens[id].occurrences.retain(|&(s, _)| s != slot);
                }
            }
        }
        // Saturating: counts read from a saved index are not trusted to balance.
        for &id in &entry.subject_tokens {
            let count = &mut self.vocabulary.tokens[id].entry_count;
            *count = count.saturating_sub(1);
        }
        for &id in &entry.prompt_tokens {
            let count = &mut self.vocabulary.tokens[id].prompt_count;
            *count = count.saturating_sub(1);
        }
        for &id in entry.subject_tokens.iter().chain(&entry.prompt_tokens) {
            self.vocabulary.tokens[id].refresh_weight();
        }
        self.vocabulary.count_pairs(&entry.run_pairs, false);
    }

    /// The entries the query mentions, best first; of entries sharing a subject only the one whose
    /// prompts the query resembles most (several if they tie).
    pub fn search(&self, query: &str) -> Vec<Hit> {
        let resemblance =
            |a: &Hit, b: &Hit| a.prompt_similarity.total_cmp(&b.prompt_similarity).then(a.score.total_cmp(&b.score));
        self.best_per_subject(self.search_all(query), resemblance).0
    }

    /// Of `hits` whose entries share a subject, the greatest by `order` (all of them where they tie),
    /// ranked as [`SubjectIndex::search_all`] ranks; and the hits passed over.
    pub fn best_per_subject(&self, mut hits: Vec<Hit>, order: impl Fn(&Hit, &Hit) -> Ordering) -> (Vec<Hit>, Vec<Hit>) {
        hits.sort_by(|a, b| order(b, a));
        let (mut kept, mut passed_over): (Vec<Hit>, Vec<Hit>) = (Vec::new(), Vec::new());
        for hit in hits {
            let rival = kept.iter().find(|k| self.share_subject(&k.entry_id, &hit.entry_id));
            if rival.is_none_or(|r| order(r, &hit) == Ordering::Equal) {
                kept.push(hit);
            } else {
                passed_over.push(hit);
            }
        }
        kept.sort_by(rank);
        (kept, passed_over)
    }

    /// Every entry the query mentions, best first (subject score, then prompt similarity).
    pub fn search_all(&self, query: &str) -> Vec<Hit> {
        let located = tokenize_located(query);
        let query_tokens: Vec<Token> = located.iter().map(|t| t.token.clone()).collect();
        // Per entry, its best subject's score and the bytes of the query naming it (see `Hit::mention`).
        let mut best: HashMap<&str, (f32, &IndexedSubject, Option<Range<usize>>)> = HashMap::new();
        let by_letters = self.matches_by_subject(&query_tokens).into_iter().filter_map(|(slot, matches)| {
            let subject = self.subjects[slot].as_ref().expect("matches only point at live subjects");
            let (score, words) = self.subject_score(subject, matches)?;
            let named = &located[words];
            let names = !subject.prompt && named.iter().all(|t| t.token.kind != TokenKind::Run);
            Some((subject, score, names.then(|| named[0].span.start..named[named.len() - 1].span.end)))
        });
        let by_sound = self.sounds.search(query, &located, &self.settings).into_iter().map(|(slot, score, named)| {
            (self.subjects[slot].as_ref().expect("the sound index only holds live subjects"), score, Some(named))
        });
        for (subject, score, named) in by_letters.chain(by_sound) {
            if score > 0.0 {
                let current = best.entry(&subject.entry_id).or_insert((score, subject, named.clone()));
                if score > current.0 {
                    *current = (score, subject, named);
                }
            }
        }
        let query_features = content_features(&query_tokens);
        let mut hits: Vec<Hit> = best
            .into_iter()
            .map(|(entry_id, (score, subject, named))| Hit {
                entry_id: entry_id.to_string(),
                score,
                matched_subject: subject.original.clone(),
                mention: named.map_or(String::new(), |bytes| query[bytes].to_string()),
                prompt_similarity: self.prompt_similarity(entry_id, &query_features),
                ..Hit::default()
            })
            .collect();
        hits.sort_by(rank);
        hits
    }

    /// For every subject that has tokens resembling query tokens and could fire on them, each such
    /// pair; in slot order.
    fn matches_by_subject(&self, query_tokens: &[Token]) -> Vec<(usize, Vec<TokenMatch>)> {
        let mut positions: HashMap<&Token, Vec<usize>> = HashMap::new();
        for (position, token) in query_tokens.iter().enumerate() {
            positions.entry(token).or_default().push(position);
        }
        // A search that panicked may have left its arrays dirty: then they are cleared.
        let mut scratch = self.scratch.lock().unwrap_or_else(|poisoned| {
            let mut scratch = poisoned.into_inner();
            *scratch = SearchScratch::default();
            scratch
        });
        let SearchScratch { shared_grams, reachable, candidate } = &mut *scratch;
        shared_grams.resize(self.vocabulary.tokens.len(), 0);
        reachable.resize(self.subjects.len(), 0.0);
        candidate.resize(self.subjects.len(), false);
        // Vocabulary id -> (query position, similarity) of each query token resembling it.
        let mut resembled: HashMap<usize, Vec<(usize, f32)>> = HashMap::new();
        for (token, query_positions) in positions {
            let mut similar = self.vocabulary.similar(token, &self.settings, shared_grams);
            // A subject word may carry a clitic in the query ("בליסורס", "퀴리는"): its stems match too,
            // as written only (a stem that is also respelled would be a guess on a guess).
            let stems = without_clitics(token);
            similar.extend(stems.iter().filter_map(|stem| self.vocabulary.exact_id(stem)).map(|id| (id, 1.0)));
            for (id, similarity) in similar {
                resembled.entry(id).or_default().extend(query_positions.iter().map(|&p| (p, similarity)));
            }
        }
        let counts = |slot: usize, similarity: f32| similarity >= 1.0 || !self.slot_briefs[slot].exact_only;
        // Common words (articles, question words) are in thousands of prompts: add up the weight each
        // subject could reach first, and gather the pairs of only those that could fire.
        // Listed once each, unless a token weighs nothing (then again, which is harmless).
        let mut touched = Vec::new();
        for (&id, pairs) in &resembled {
            let best = pairs.iter().map(|&(_, similarity)| similarity).fold(0.0, f32::max);
            let weight = self.vocabulary.tokens[id].weight;
            for &(slot, _) in &self.vocabulary.tokens[id].occurrences {
                if counts(slot, best) {
                    if reachable[slot] == 0.0 {
                        touched.push(slot);
                    }
                    reachable[slot] += weight;
                }
            }
        }
        // A margin for rounding: `subject_score` decides exactly.
        let needed_share = self.settings.threshold.min(self.settings.partial_threshold) * (1.0 - PRUNE_MARGIN);
        // No token is in more subjects or prompts than there are entries, so none weighs less per letter.
        let least_weight_per_letter = 1.0 / (1.0 + (self.entries.len().max(1) as f32).ln());
        for &slot in &touched {
            // Most subjects reached only through common words fail this bound, without adding up weights.
            if reachable[slot] < needed_share * self.slot_briefs[slot].letters as f32 * least_weight_per_letter {
                continue;
            }
            let subject = self.subjects[slot].as_ref().expect("occurrences only point at live subjects");
            let total: f32 = subject.tokens.iter().map(|&id| self.vocabulary.tokens[id].weight).sum();
            candidate[slot] = reachable[slot] >= needed_share * total;
        }
        let mut by_subject: HashMap<usize, Vec<TokenMatch>> = HashMap::new();
        for (&id, pairs) in &resembled {
            for &(slot, subject_position) in &self.vocabulary.tokens[id].occurrences {
                if !candidate[slot] {
                    continue;
                }
                let matches = by_subject.entry(slot).or_default();
                matches.extend(
                    pairs.iter().filter(|&&(_, similarity)| counts(slot, similarity)).map(
                        |&(query_position, similarity)| TokenMatch { subject_position, query_position, similarity },
                    ),
                );
            }
        }
        for &slot in &touched {
            reachable[slot] = 0.0;
            candidate[slot] = false;
        }
        let mut by_subject: Vec<(usize, Vec<TokenMatch>)> = by_subject.into_iter().collect();
        by_subject.sort_unstable_by_key(|(slot, _)| *slot);
        by_subject
    }

    /// Best weighted share of the subject's tokens matched within one window of query tokens, each
    /// query word standing for at most one subject word ("Kara Kara" needs two), with the query
    /// tokens from the first to the last it matched; `None` unless it fires.
    fn subject_score(&self, subject: &IndexedSubject, mut matches: Vec<TokenMatch>) -> Option<(f32, Range<usize>)> {
        let weight = |id: usize| self.vocabulary.tokens[id].weight;
        let total: f32 = subject.tokens.iter().map(|&id| weight(id)).sum();
        // Skip subjects whose matched tokens could not reach the lowest firing score anywhere.
        let reachable: f32 = (subject.tokens.iter().enumerate())
            .filter(|(position, _)| matches.iter().any(|m| m.subject_position == *position))
            .map(|(_, &id)| weight(id))
            .sum();
        if total == 0.0 || reachable < self.settings.threshold.min(self.settings.partial_threshold) * total {
            return None;
        }
        let tokens: Vec<&VocabularyToken> = subject.tokens.iter().map(|&id| &self.vocabulary.tokens[id]).collect();
        let weights: Vec<f32> = tokens.iter().map(|t| t.weight).collect();
        matches.sort_by_key(|m| (m.query_position, m.subject_position));
        let window = subject.tokens.len() + self.settings.window_slack;
        let mut best: Option<(f32, Range<usize>)> = None;
        let mut found = vec![0.0f32; subject.tokens.len()];
        let mut used_positions = Vec::new();
        for (start, first) in matches.iter().enumerate() {
            if start > 0 && matches[start - 1].query_position == first.query_position {
                continue;
            }
            let mut in_window: Vec<&TokenMatch> =
                matches[start..].iter().take_while(|m| m.query_position < first.query_position + window).collect();
            // Most similar pairs first; ties in a fixed order so that results do not depend on hashing.
            in_window.sort_by(|a, b| {
                b.similarity
                    .total_cmp(&a.similarity)
                    .then(a.subject_position.cmp(&b.subject_position))
                    .then(a.query_position.cmp(&b.query_position))
            });
            found.fill(0.0);
            used_positions.clear();
            for m in in_window {
                // A query run may hold several subject runs (a name split by a dot in one, not the other).
                let reusable = tokens[m.subject_position].token.kind == TokenKind::Run;
                if found[m.subject_position] == 0.0 && (reusable || !used_positions.contains(&m.query_position)) {
                    found[m.subject_position] = m.similarity;
                    used_positions.push(m.query_position);
                }
            }
            let exact = found.iter().all(|&s| s == 1.0);
            let evidence: f32 = found.iter().zip(&tokens).map(|(s, t)| s * t.letters as f32).sum();
            // Numbers identify ("Venera 9" is not "Venera 10"): all must be there.
            let numbers_found = found.iter().zip(&tokens).all(|(s, t)| *s > 0.0 || t.token.kind != TokenKind::Number);
            let coverage = found.iter().zip(&weights).map(|(s, w)| s * w).sum::<f32>() / total;
            let words_found = (0..found.len())
                .filter(|&i| {
                    found[i] >= STRONG_SIMILARITY
                        && tokens[i].letters >= PARTIAL_MIN_LETTERS
                        && tokens[i].frequency() <= PARTIAL_MAX_FREQUENCY
                })
                .count();
            let threshold = if matches!(tokens[..], [only] if only.token.kind == TokenKind::Word) {
                self.settings.single_word_threshold
            } else {
                self.settings.threshold
            };
            let fires = coverage >= threshold
                || (subject.partial_allowed
                    && words_found >= self.settings.partial_min_words
                    && coverage >= self.settings.partial_threshold);
            if fires
                && numbers_found
                && (exact || evidence >= MIN_EVIDENCE_CHARS)
                && best.as_ref().is_none_or(|b| coverage > b.0)
            {
                let first = used_positions.iter().min().copied().unwrap_or(first.query_position);
                let last = used_positions.iter().max().copied().unwrap_or(first);
                best = Some((coverage, first..last + 1));
            }
        }
        best
    }

    fn prompt_similarity(&self, entry_id: &str, query_features: &HashSet<String>) -> f32 {
        let Some(entry) = self.entries.get(entry_id) else { return 0.0 };
        entry.prompt_features.iter().map(|prompt| jaccard(prompt, query_features)).fold(0.0, f32::max)
    }

    /// Whether entries `a` and `b` name a subject in common.
    pub fn share_subject(&self, a: &str, b: &str) -> bool {
        match (self.entries.get(a), self.entries.get(b)) {
            (Some(a), Some(b)) => a.subject_keys.iter().any(|key| b.subject_keys.contains(key)),
            _ => false,
        }
    }
}

/// Changes whenever the saved form of [`SubjectIndex`] (or what its fields mean) changes. 3: prompts that
/// hold a subject as written are no longer keys. 4: the vocabulary's token briefs. 5: words by spelling,
/// letter sets in the briefs. 6: subjects by sound. 7: which slots are prompts. 8: whether a word
/// opens with a consonant.
const SAVED_INDEX_FORMAT: u32 = 8;

/// A digest of an entry's subjects and prompts: a saved index compares it with the cache's rows.
fn source_digest(subjects: &[String], prompts: &[String]) -> u64 {
    stable_digest(&(subjects, prompts))
}

/// A digest of `value`, the same in every run (`DefaultHasher::new` has fixed keys): a saved index
/// keeps such digests.
fn stable_digest<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Higher subject score first, then higher prompt similarity, then entry id for a stable order.
fn rank(a: &Hit, b: &Hit) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(b.prompt_similarity.total_cmp(&a.prompt_similarity))
        .then(a.entry_id.cmp(&b.entry_id))
}

//! Token generation with a KV cache: greedy or sampled, stopping at stop tokens.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use color_eyre::eyre::bail;
use serde::{Deserialize, Serialize};

use super::model::{FfnDelta, Hooks, KvCache, Model};
use super::tokenizer::{TokenStart, Tokenizer};
use crate::text::scripts::Opening;
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    Greedy,
    /// Nucleus sampling at a temperature, reproducible from the seed.
    TopP {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 64, sampling: Sampling::Greedy }
    }
}

/// FFN deltas to apply while generating, from the prompt's last token on: at every generated position,
/// or, with a `track`, while the answer is still one the deltas were trained to give.
#[derive(Clone, Copy, Default)]
pub struct GenerationDeltas<'a> {
    pub deltas: &'a [FfnDelta],
    /// `None`: the deltas act through the whole answer.
    pub track: Option<AnswerTrack<'a>>,
    /// How the answer the deltas were trained to give opens, when generation should hold to it.
    pub opening: Option<AnswerOpening<'a>>,
}

impl GenerationDeltas<'_> {
    /// No deltas: the unchanged model.
    pub const NONE: GenerationDeltas<'static> = GenerationDeltas { deltas: &[], track: None, opening: None };
}

/// The answers update values were trained to give: they act at an answer position while the answer
/// written so far is the start of one of them. Trained to give their answer, they push its tokens
/// wherever they act; once an answer has gone its own way (a question about something else that
/// named the subject, "Capitol Records ..." for "Which building did the architect of X design?"),
/// pushing them only garbles it, and the unedited model writes the rest. The text after a complete
/// answer comes from the unedited model too (the deltas would repeat the answer).
#[derive(Clone, Copy)]
pub struct AnswerTrack<'a> {
    pub tokenizer: &'a Tokenizer,
    pub answers: &'a [String],
    /// Those of `answers` trained in the query's language (none: no preference). An answer about to
    /// leave them for another language's is first tried as one of them (see [`Steering::next_token`]).
    pub in_query_language: &'a [String],
}

impl<'a> AnswerTrack<'a> {
    /// The track narrowed to the answers in the query's language, when there are such answers.
    fn of_query_language(&self) -> Option<AnswerTrack<'a>> {
        let answers = self.in_query_language;
        (!answers.is_empty()).then_some(AnswerTrack { answers, ..*self })
    }

    /// Whether the deltas act at the position after the answer tokens `written`.
    pub fn follows(&self, written: &[u32]) -> bool {
        written.is_empty() || self.tokenizer.decode(written).is_ok_and(|text| continues_answer(&text, self.answers))
    }

    /// At how many positions of a teacher-forced `answer` the deltas act: the first, and each after a
    /// prefix of it that [`AnswerTrack::follows`].
    pub fn followed_tokens(&self, answer: &[u32]) -> usize {
        (1..answer.len()).find(|&written| !self.follows(&answer[..written])).unwrap_or(answer.len())
    }

    /// Whether the answer `written` has begun one of the trained answers and not yet ended it: it may
    /// not end here (see [`Steering::next_token`]).
    fn unfinished(&self, written: &[u32]) -> bool {
        !written.is_empty() && self.tokenizer.decode(written).is_ok_and(|text| begins_answer(&text, self.answers))
    }

    /// Whether `token` would end the answer: a stop token, or one that breaks the line.
    fn ends_answer(&self, token: u32, stop_ids: &[u32]) -> bool {
        stop_ids.contains(&token) || self.tokenizer.decode(&[token]).is_ok_and(|piece| piece.contains(['\n', '\r']))
    }

    /// Of the [`CONTINUATION_CANDIDATES`] likeliest next tokens after `written`, likeliest first, those
    /// that add to the answer and keep it one of the trained answers (under way or whole).
    fn continuations(&self, written: &[u32], logits: &Tensor, stop_ids: &[u32]) -> Result<Vec<u32>> {
        let values: Vec<f32> = logits.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let mut candidates: Vec<u32> = (0..values.len() as u32).collect();
        let by_logit = |a: &u32, b: &u32| values[*b as usize].total_cmp(&values[*a as usize]);
        let count = CONTINUATION_CANDIDATES.min(candidates.len());
        if count < candidates.len() {
            candidates.select_nth_unstable_by(count, by_logit);
            candidates.truncate(count);
        }
        candidates.sort_by(by_logit);
        // The answer's text from its first letter or digit on, whole characters only: a candidate must
        // add to it (a space, a mark or a piece of a character is no step along a trained answer).
        let answer_length = |ids: &[u32]| {
            self.tokenizer
                .decode(ids)
                .map_or(0, |text| from_first_letter(&text).trim_end_matches(char::REPLACEMENT_CHARACTER).len())
        };
        let before = answer_length(written);
        let mut extended = written.to_vec();
        candidates.retain(|&token| {
            extended.truncate(written.len());
            extended.push(token);
            !self.ends_answer(token, stop_ids) && answer_length(&extended) > before && self.follows(&extended)
        });
        Ok(candidates)
    }

    /// Whether `written` is one of the trained answers whole (marks and spaces before it aside).
    fn whole(&self, written: &[u32]) -> bool {
        self.tokenizer.decode(written).is_ok_and(|text| is_whole_answer(&text, self.answers))
    }
}

/// `text` from its first letter or digit on: marks and spaces a model writes before an answer ("?\n") left out.
fn from_first_letter(text: &str) -> &str {
    text.trim_start_matches(|c: char| !c.is_alphanumeric())
}

/// Whether `text`, spaces (or marks) before it aside, is one of `answers` whole.
fn is_whole_answer(text: &str, answers: &[String]) -> bool {
    let written = [text.trim(), from_first_letter(text).trim_end()];
    !written[1].is_empty() && answers.iter().any(|a| written.contains(&a.trim()))
}

/// Whether `text` is under way as one of `answers`: it has a letter or digit, [`continues_answer`]
/// holds, and it is none of them whole.
fn begins_answer(text: &str, answers: &[String]) -> bool {
    !from_first_letter(text).is_empty() && continues_answer(text, answers) && !is_whole_answer(text, answers)
}

/// Whether `text`, spaces and marks before it aside (a model may close the question first: "?\n"),
/// is the start of one of `answers` or one of them whole; a character still in pieces at its end
/// does not count against it.
fn continues_answer(text: &str, answers: &[String]) -> bool {
    let text = text.trim_end_matches(char::REPLACEMENT_CHARACTER);
    let written = [text.trim_start(), from_first_letter(text)];
    (answers.iter().map(|a| a.trim()).filter(|a| !a.is_empty()))
        .any(|answer| written.iter().any(|w| answer.starts_with(w) || w.trim_end() == answer))
}

/// How an answer the deltas were trained to give opens: its first character other than a space, and
/// whether its first token is a piece of that character (byte-level vocabularies split characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainedOpening {
    pub opening: Opening,
    pub in_pieces: bool,
}

/// How an answer must open: as its trained answer opens (a letter of its script, a digit or a mark),
/// after a space or a mark at most, not with a line break or the end of text. Update values shared by
/// a fact's languages push every language's answer; asked in other words, a Thai question could get
/// the English spelling (" San Francisco" for "ซานฟรานซิสโก"), a fragment ("pe"), or only line breaks.
#[derive(Clone, Copy)]
pub struct AnswerOpening<'a> {
    /// How each token can begin an answer ([`super::Tokenizer::token_starts`]).
    pub starts: &'a [TokenStart],
    /// Reads pieces of a character: the answer begins once they make a whole one.
    pub tokenizer: &'a Tokenizer,
    pub trained: TrainedOpening,
}

impl AnswerOpening<'_> {
    /// Whether the answer may go on with `token` before it has begun, after `generated` tokens: with its
    /// first word as trained, after a space or a mark at most (trained answers follow their question
    /// at once, their first word's space attached or alone; a model may close the question first, "?"),
    /// and in pieces of a character where the trained answer opens so, within the bytes one character
    /// takes. Anything more (line breaks, a list's "*", runs of spaces) leads a model away from the
    /// answer it was trained to give: to nothing but line breaks, or to words of another script.
    fn admits(&self, token: usize, generated: usize) -> bool {
        match self.starts.get(token) {
            Some(TokenStart::Opens(Opening::Mark)) if self.trained.opening != Opening::Mark => generated == 0,
            Some(TokenStart::Opens(opening)) => self.trained.opening.admits(*opening),
            Some(TokenStart::LineBreak) => false,
            Some(TokenStart::Blank) => generated == 0,
            Some(TokenStart::Unknown) => self.trained.in_pieces && generated < MAX_UTF8_BYTES,
            None => true,
        }
    }

    /// `logits` with every token that may not come next left out (stop tokens too: the answer has not begun).
    fn restrict(&self, logits: &Tensor, generated: usize, stop_ids: &[u32]) -> Result<Tensor> {
        let mut values: Vec<f32> = logits.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        for (token, value) in values.iter_mut().enumerate() {
            if !self.admits(token, generated) {
                *value = f32::NEG_INFINITY;
            }
        }
        for &stop in stop_ids {
            if let Some(value) = values.get_mut(stop as usize) {
                *value = f32::NEG_INFINITY;
            }
        }
        Ok(Tensor::from_vec(values, logits.shape(), logits.device())?)
    }

    /// Whether the answer has begun with the last of `generated`: after it, generation runs free.
    /// Spaces, a mark before an answer that opens otherwise, and pieces of a character until they make
    /// a whole one (a no-break space comes as two byte tokens) do not begin it.
    fn begun(&self, generated: &[u32]) -> bool {
        let Some(&token) = generated.last() else { return false };
        match self.starts.get(token as usize) {
            Some(TokenStart::Blank) => false,
            Some(TokenStart::Unknown) => {
                self.tokenizer.decode(generated).is_ok_and(|text| pieces_begin_answer(&text, self.trained.opening))
            }
            Some(TokenStart::Opens(Opening::Mark)) => self.trained.opening == Opening::Mark,
            _ => true,
        }
    }
}

/// Whether pieces of a character that end `text` begin an answer opening as `trained`: once they make a
/// whole character (the decoded text no longer ends in a replacement character) that is not a space,
/// nor a mark where the answer opens otherwise. Counted as begun only at the first piece, a character
/// in three pieces and another in two ("韦尔" in SmolLM2's byte-level vocabulary) met the limit on pieces
/// before the answer began, and the third piece of "尔" was barred: "韦�取" for "韦尔顿·贝克特".
fn pieces_begin_answer(text: &str, trained: Opening) -> bool {
    if text.ends_with(char::REPLACEMENT_CHARACTER) {
        return false;
    }
    match text.chars().last() {
        Some(c) if c.is_whitespace() => false,
        Some(c) => Opening::of(c.encode_utf8(&mut [0; 4])) != Some(Opening::Mark) || trained == Opening::Mark,
        None => false,
    }
}

/// How many of the likeliest next tokens an answer about to leave its trained answers looks through
/// for one that keeps to them (see [`AnswerTrack::continuations`]).
const CONTINUATION_CANDIDATES: usize = 64;

/// How many tokens that keep to a trained answer an answer about to open otherwise (or leave the one
/// it has begun as) tries, likeliest first (each costs the tokens it takes to leave its answer): a
/// bound on the time, not a tuned value.
const ANSWER_TRIALS: usize = 4;

/// An answer continued, on trial, as a trained answer instead of as the model would go on (see
/// [`Steering::next_token`]): what is needed to undo it.
struct AnswerTrial<'a> {
    /// The KV cache before the trial's first token.
    cache: KvCache,
    /// How many tokens were generated before it.
    written: usize,
    /// How the answer had to open before it.
    opening: Option<AnswerOpening<'a>>,
    /// The token the model would have written.
    own: u32,
    /// Tokens not tried yet, the likeliest last, each with the answers it holds to.
    candidates: Vec<(u32, AnswerTrack<'a>)>,
    /// The answers the token being tried holds to: the trial is kept once the answer is one of them
    /// whole, and undone once it leaves them.
    holding: AnswerTrack<'a>,
}

impl<'a> AnswerTrial<'a> {
    /// The next token to try, or the model's own once none is left.
    fn next_or_own(&mut self) -> u32 {
        match self.candidates.pop() {
            Some((token, holding)) => {
                self.holding = holding;
                token
            }
            None => self.own,
        }
    }

    /// Undoes the trial's tokens (the answer has left the trained answer it was opened as) and returns
    /// the next token to try, or the model's own.
    fn undo(&mut self, generated: &mut Vec<u32>, cache: &mut KvCache, opening: &mut Option<AnswerOpening<'a>>) -> u32 {
        generated.truncate(self.written);
        *cache = self.cache.clone();
        *opening = self.opening;
        self.next_or_own()
    }
}

/// What update values make of an answer as it is written, token by token: whether they still act,
/// how the answer must open, and the trial it may be on.
struct Steering<'a> {
    deltas: GenerationDeltas<'a>,
    /// How the answer must open, until it has begun.
    opening: Option<AnswerOpening<'a>>,
    /// Whether the deltas still act. An answer that has left every trained one never comes back to
    /// one: once off the track, the rest is not decoded again to check.
    active: bool,
    trial: Option<AnswerTrial<'a>>,
    /// Whether the answer was already tried as one in the query's language: once is enough.
    tried_query_language: bool,
}

impl<'a> Steering<'a> {
    fn new(deltas: GenerationDeltas<'a>) -> Self {
        Self { deltas, opening: deltas.opening, active: true, trial: None, tried_query_language: false }
    }

    /// The deltas that act at the position after the answer tokens `generated`.
    fn acting(&mut self, generated: &[u32]) -> &'a [FfnDelta] {
        self.active = self.active && self.deltas.track.is_none_or(|track| track.follows(generated));
        if self.active {
            self.deltas.deltas
        } else {
            &[]
        }
    }

    /// The token after `generated`, from the model's `logits` there: sampled among the tokens the
    /// answer may open with, then finished, tried or undone as the trained answers require. Undoing a
    /// trial rolls `generated` and `cache` back to where it began.
    fn next_token(
        &mut self,
        logits: Tensor,
        sampler: &mut LogitsProcessor,
        generated: &mut Vec<u32>,
        cache: &mut KvCache,
        stop_ids: &[u32],
    ) -> Result<u32> {
        let logits = match &self.opening {
            Some(opening) => opening.restrict(&logits, generated.len(), stop_ids)?,
            None => logits,
        };
        let mut token = sampler.sample(&logits)?;
        let Some(track) = self.deltas.track.filter(|_| self.active) else { return Ok(token) };
        // On trial, the answer holds to the answers the token tried holds to.
        let holding = self.trial.as_ref().map_or(track, |trial| trial.holding);
        // While the update values act, an answer that has begun as a trained one does not end before
        // it is whole: asked in a language it was not trained in, an edit's answer broke its line
        // after a piece of the trained one ("Krim" for "Krimkrieg", "Nazli" for "Nazli Sabri": 31 of
        // 232 answers that fired in 31 BMIKE-53 languages; docs/results.md, stop 45). Barring the
        // line end alone let an answer run off ("Krim, Jugoslavija, Francuska, ..."): the likeliest
        // token that goes on with a trained answer is taken.
        if holding.unfinished(generated) && holding.ends_answer(token, stop_ids) {
            token = holding.continuations(generated, &logits, stop_ids)?.first().copied().unwrap_or(token);
        }
        let next = [generated.as_slice(), &[token]].concat();
        if let Some(trial) = &mut self.trial {
            if stop_ids.contains(&token) || !holding.follows(&next) {
                token = trial.undo(generated, cache, &mut self.opening);
                if token == trial.own {
                    self.trial = None;
                }
            }
            return Ok(token);
        }
        let mut candidates: Vec<(u32, AnswerTrack<'a>)> = Vec::new();
        // An answer about to leave the answers in the query's language for another language's (a
        // Serbian question answered "United States Senator" for "Senator Sjedinjenih Američkih
        // Država": update values shared by a fact's languages push every language's answer) goes on,
        // on trial, as one in the query's language where a token of one is among the model's likeliest.
        if let Some(own) = track.of_query_language().filter(|_| !self.tried_query_language) {
            if own.follows(generated) && !own.follows(&next) && !own.whole(generated) {
                self.tried_query_language = true;
                let tokens = own.continuations(generated, &logits, stop_ids)?;
                candidates.extend(tokens.into_iter().take(ANSWER_TRIALS).map(|token| (token, own)));
            }
        }
        if !track.follows(&next) && !track.whole(generated) {
            // An answer that would open otherwise than every trained answer, or leave the one it has
            // begun as, goes on, on trial, as one of them where a token of one is among the model's
            // likeliest: the trial is kept once the model, going on from it, has written that answer
            // whole, and undone once it leaves it. A begun answer that left its trained one looped
            // once the edit stopped acting ("特拉华 特拉华 桥 桥 桥" for "特拉华河", Bi-ZsRE).
            // Asked in other words or another language, a fired edit's answer went its own way from
            // its first word ("Universidad de Buenos Aires" for "University of Copenhagen"), and an
            // opening taken without the rest broke words ("Gió" for "Großer Bär"; docs/results.md, stop 46).
            let tokens = track.continuations(generated, &logits, stop_ids)?;
            let untried: Vec<u32> = tokens.into_iter().filter(|t| candidates.iter().all(|(c, _)| c != t)).collect();
            candidates.extend(untried.into_iter().take(ANSWER_TRIALS).map(|token| (token, track)));
        }
        if !candidates.is_empty() {
            candidates.reverse();
            let mut trial = AnswerTrial {
                cache: cache.clone(),
                written: generated.len(),
                opening: self.opening,
                own: token,
                candidates,
                holding: track,
            };
            token = trial.next_or_own();
            self.trial = Some(trial);
        }
        Ok(token)
    }

    /// Appends `token` (not a stop token) to the answer and returns how many of its last tokens are
    /// shown now: a trial's tokens are held until it is kept.
    fn take(&mut self, token: u32, generated: &mut Vec<u32>) -> usize {
        generated.push(token);
        if self.opening.is_some_and(|opening| opening.begun(generated)) {
            self.opening = None;
        }
        match &self.trial {
            None => 1,
            Some(trial) if trial.holding.whole(generated) => {
                let shown = generated.len() - trial.written;
                self.trial = None;
                shown
            }
            Some(_) => 0,
        }
    }

    /// The tokens held for a trial still under way. Out of room before its answer was whole, still on
    /// it, an answer is cut there, as any answer that runs out of room is (undone, it would be one
    /// token of the model's own).
    fn held<'g>(&self, generated: &'g [u32]) -> &'g [u32] {
        self.trial.as_ref().map_or(&[], |trial| &generated[trial.written..])
    }
}

/// The most tokens one character can be split into (byte-fallback tokens, one UTF-8 byte each).
const MAX_UTF8_BYTES: usize = 4;

/// Prompt tokens run per forward pass before generating: attention scores then take (chunk x prompt)
/// memory instead of (prompt x prompt), so a long prompt costs memory linear in its length.
pub const PREFILL_CHUNK: usize = 256;

impl Model {
    /// Generates after `prompt`, calling `on_token` with each new token; it returns false to stop early.
    /// Stop tokens end the generation and are not returned.
    pub fn generate(
        &self,
        prompt: &[u32],
        deltas: GenerationDeltas,
        options: &GenerateOptions,
        stop_ids: &[u32],
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            bail!("cannot generate from an empty prompt");
        }
        let context = self.config().context_length;
        if prompt.len() >= context {
            bail!("the prompt is {} tokens; this model reads at most {} (its context)", prompt.len(), context - 1);
        }
        let mut sampler = match options.sampling {
            Sampling::Greedy => LogitsProcessor::from_sampling(0, CandleSampling::ArgMax),
            Sampling::TopP { temperature, top_p, seed } => {
                LogitsProcessor::from_sampling(seed, CandleSampling::TopP { p: top_p, temperature })
            }
        };
        let mut cache = KvCache::default();
        // Everything before the chunk holding the prompt's last token is only cached: no deltas act
        // there (they start at the answer) and no logits are needed.
        let last_chunk_start = (prompt.len() - 1) / PREFILL_CHUNK * PREFILL_CHUNK;
        for chunk in prompt[..last_chunk_start].chunks(PREFILL_CHUNK) {
            let ids = Tensor::new(chunk, self.device())?.unsqueeze(0)?;
            self.forward(&ids, Some(&mut cache), Hooks::default())?;
        }
        let mut input = prompt[last_chunk_start..].to_vec();
        let mut generated = Vec::new();
        let answer_start = [prompt.len() - 1];
        let mut steering = Steering::new(deltas);
        while generated.len() < options.max_new_tokens && cache.len() + input.len() < context {
            let ids = Tensor::new(input.as_slice(), self.device())?.unsqueeze(0)?;
            // Position prompt.len() - 1 + generated.len() is the last one this pass computes.
            let hooks =
                Hooks { ffn_deltas: steering.acting(&generated), deltas_from: Some(&answer_start), ..Hooks::default() };
            let out = self.forward(&ids, Some(&mut cache), hooks)?;
            let hidden = out.hidden.expect("a full forward pass returns hidden states");
            let last = hidden.get(0)?.get(input.len() - 1)?;
            let logits = self.logits(&last.unsqueeze(0)?)?.squeeze(0)?;
            let token = steering.next_token(logits, &mut sampler, &mut generated, &mut cache, stop_ids)?;
            if stop_ids.contains(&token) {
                break;
            }
            let shown = steering.take(token, &mut generated);
            if !generated[generated.len() - shown..].iter().all(|&t| on_token(t)) {
                break;
            }
            input = vec![token];
        }
        for &token in steering.held(&generated) {
            if !on_token(token) {
                break;
            }
        }
        Ok(generated)
    }
}

#[cfg(test)]
mod tests {
    use super::{begins_answer, continues_answer, is_whole_answer, pieces_begin_answer};
    use crate::text::scripts::{Opening, Script};

    #[test]
    fn an_answer_is_followed_while_it_is_the_start_of_a_trained_one() {
        let answers = ["Lisbon".to_string(), " Lissabon ".to_string()];
        for written in ["", " ", " Lis", "Lisb", "Lissabon", " Lisbon", "Lisbon\n", "?\n Lis", "\"Lis"] {
            assert!(continues_answer(written, &answers), "{written:?}");
        }
        for written in [" Lisbon,", "Lisbon Portugal", "The", " lis", " Capitol Records"] {
            assert!(!continues_answer(written, &answers), "{written:?}");
        }
        // A character still in pieces; an answer of marks alone.
        assert!(continues_answer("เวลตัน\u{FFFD}", &["เวลตัน เบ็คเก็ต".to_string()]));
        assert!(continues_answer(" 🙂", &["🙂".to_string()]));
        assert!(!continues_answer("x", &[]));
    }

    #[test]
    fn an_answer_is_under_way_from_its_first_letter_until_it_is_a_trained_one_whole() {
        let answers = ["Crimean War".to_string(), "Krimkrieg".to_string(), "Nazli Sabri".to_string()];
        for written in [" Krim", "Krimk", " Nazli", "?\n Crimean", " Nazli Sab"] {
            assert!(begins_answer(written, &answers), "{written:?}");
        }
        // Nothing begun yet, an answer whole (it may end), or one gone its own way.
        for written in ["", " ", "?\n", " Krimkrieg", "Nazli Sabri\n", " Krim,", " Belgija"] {
            assert!(!begins_answer(written, &answers), "{written:?}");
        }
    }

    #[test]
    fn an_answer_is_whole_when_it_is_a_trained_one_from_its_first_letter() {
        let answers = ["University of Copenhagen".to_string(), " Krimkrieg".to_string(), "\"Heroes\"".to_string()];
        for written in [" University of Copenhagen", "?\n Krimkrieg", "Krimkrieg \n", " \"Heroes\"", "\"Heroes\""] {
            assert!(is_whole_answer(written, &answers), "{written:?}");
        }
        for written in ["", " ", " University", " Krim", " Krimkriege", "?"] {
            assert!(!is_whole_answer(written, &answers), "{written:?}");
        }
    }

    #[test]
    fn pieces_begin_an_answer_once_they_make_a_whole_character() {
        let han = Opening::Letter(Some(Script::Han));
        assert!(!pieces_begin_answer("\u{FFFD}", han));
        assert!(pieces_begin_answer("韦", han));
        assert!(!pieces_begin_answer("韦\u{FFFD}", han), "the next character in pieces");
        assert!(pieces_begin_answer(" 韦", han));
        assert!(!pieces_begin_answer("\u{A0}", han), "a no-break space");
        assert!(!pieces_begin_answer("，", han), "a mark where the answer opens with a letter");
        assert!(pieces_begin_answer("「", Opening::Mark));
    }
}

//! Tokenizer from a `tokenizer.json` or from GGUF metadata, with the model's BOS/EOS conventions.

use std::path::Path;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use color_eyre::eyre::{bail, eyre};
use rayon::prelude::*;

use super::frame::{ChatFrame, ChatTemplate, PromptFrame, TemplateSource};
use crate::text::scripts::Opening;
use crate::Result;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    /// Tokens that end a generation (EOS, end-of-turn markers).
    stop_ids: Vec<u32>,
    add_bos: bool,
    /// The model's chat template, when it has one that renders.
    chat_template: Option<ChatTemplate>,
    /// Why the model's chat template is not used, when it has one that does not render.
    chat_template_error: Option<String>,
    /// How each token can begin an answer, by id: computed on first use (see [`Tokenizer::token_starts`]).
    starts: OnceLock<Vec<TokenStart>>,
}

/// How a token can begin an answer: what it holds before its first character other than a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStart {
    /// Nothing but spaces, no line break (special tokens too): the answer has not begun.
    Blank,
    /// A line break before anything else.
    LineBreak,
    /// Its first character other than a space, after spaces at most.
    Opens(Opening),
    /// Part of a character split over tokens (byte fallback): which, it cannot tell.
    Unknown,
}

impl TokenStart {
    fn of(piece: &str) -> Self {
        if piece.contains('\u{fffd}') {
            return Self::Unknown;
        }
        let spaces = piece.find(|c: char| !c.is_whitespace()).map_or(piece, |at| &piece[..at]);
        match Opening::of(piece) {
            _ if spaces.contains(['\n', '\r']) => Self::LineBreak,
            Some(opening) => Self::Opens(opening),
            None => Self::Blank,
        }
    }
}

/// Names of special tokens that end a turn in the chat formats we know.
const STOP_TOKEN_NAMES: &[&str] = &["<eos>", "<end_of_turn>", "<|endoftext|>", "<|im_end|>", "</s>", "<|eot_id|>"];

impl Tokenizer {
    /// Loads `tokenizer.json` when given, else builds one from GGUF metadata.
    pub fn load(tokenizer_json: Option<&Path>, gguf: Option<&gguf_file::Content>) -> Result<Self> {
        let inner = match (tokenizer_json, gguf) {
            (Some(path), _) => tokenizers::Tokenizer::from_file(path)
                .map_err(|e| eyre!("cannot load tokenizer {}: {e}", path.display()))?,
            (None, Some(content)) => {
                let mut tokenizer = tokenizers::Tokenizer::from_gguf(content).map_err(|e| {
                    eyre!(
                        "no tokenizer: there is no tokenizer.json beside the model and its GGUF metadata \
                         has no usable tokenizer ({e}); put the model's tokenizer.json next to it"
                    )
                })?;
                let pre = content.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok());
                // candle's generic GPT-2 pipeline prepends a space ("The" becomes " The"); GGUF
                // byte-level BPE tokenizers (SmolLM2's "smollm", "gpt2") encode text as written.
                if !matches!(pre.map(String::as_str), Some("qwen2" | "smaug-bpe" | "lfm2" | "llama3")) {
                    let byte_level =
                        tokenizers::pre_tokenizers::byte_level::ByteLevel::default().add_prefix_space(false);
                    tokenizer.with_pre_tokenizer(Some(byte_level));
                }
                tokenizer
            }
            (None, None) => bail!("no tokenizer: put the model's tokenizer.json next to it"),
        };
        let meta = |key: &str| gguf.and_then(|c| c.metadata.get(key));
        let token_id = |name: &str| inner.token_to_id(name);
        let bos = meta("tokenizer.ggml.bos_token_id").and_then(|v| v.to_u32().ok()).or_else(|| token_id("<bos>"));
        let add_bos = meta("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or_else(|| token_id("<bos>").is_some());
        let mut stop_ids: Vec<u32> = STOP_TOKEN_NAMES.iter().filter_map(|n| token_id(n)).collect();
        let eos = meta("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok());
        stop_ids.extend(eos);
        let special_text =
            |given: Option<String>, id: Option<u32>| given.or_else(|| id.and_then(|id| inner.id_to_token(id)));
        // A template that cannot be read or rendered leaves the model usable, raw (see `chat_frame`).
        let template = TemplateSource::find(gguf, tokenizer_json).and_then(|found| {
            found
                .map(|found| {
                    let bos_text = special_text(found.bos, bos).unwrap_or_default();
                    let eos_text = special_text(found.eos, eos).unwrap_or_default();
                    ChatTemplate::new(&found.source, &bos_text, &eos_text, add_bos && bos.is_some())
                })
                .transpose()
        });
        let (chat_template, chat_template_error) = match template {
            Ok(template) => (template, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        // The EOS `tokenizer_config.json` names ends the template's turns.
        stop_ids.extend(chat_template.as_ref().and_then(|t| token_id(&t.eos)));
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self { inner, bos, stop_ids, add_bos, chat_template, chat_template_error, starts: OnceLock::new() })
    }

    /// `frame` as this model takes it: `Auto` is its chat template when it has a usable one, else the
    /// QA frame (a base model asked a bare question often echoes it or writes a forum's next line).
    pub fn chat_frame(&self, frame: PromptFrame) -> Result<ChatFrame<'_>> {
        Ok(match (frame, &self.chat_template) {
            (PromptFrame::Raw, _) => ChatFrame::Raw,
            (PromptFrame::Qa, _) | (PromptFrame::Auto, None) => ChatFrame::Qa,
            (PromptFrame::Auto | PromptFrame::Template, Some(template)) => ChatFrame::Template(template),
            (PromptFrame::Template, None) => match &self.chat_template_error {
                Some(e) => bail!("the model's chat template cannot be used: {e}"),
                None => bail!("the model has no chat template (a base model): use the qa or raw frame"),
            },
        })
    }

    /// A warning for a model whose chat template does not render: its questions go to it in the QA frame.
    pub fn chat_template_warning(&self) -> Option<String> {
        let error = self.chat_template_error.as_ref()?;
        Some(format!("the model's chat template cannot be used, so questions go to it as `Q: ...` / `A:`: {error}"))
    }

    /// Token ids of a prompt, with BOS when the model expects it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.bos.filter(|_| self.add_bos).into_iter().collect();
        ids.extend(self.encode_plain(text)?);
        Ok(ids)
    }

    /// Token ids of a text fragment, no special tokens.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, false).map_err(|e| eyre!("cannot tokenize text: {e}"))?.get_ids().to_vec())
    }

    /// Refuses `text` when it takes more than `limit` tokens; the message names it as `what` (say
    /// "edit group `g`, language en: the prompt") with its length, so the user knows what to shorten.
    pub fn check_length(&self, what: &str, text: &str, limit: usize) -> Result<()> {
        let tokens = self.encode_plain(text)?.len();
        if tokens > limit {
            bail!("{what} is {tokens} tokens long; this model takes at most {limit} tokens per input");
        }
        Ok(())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| eyre!("cannot decode tokens: {e}"))
    }

    /// The text of one token as the vocabulary spells it (for neuron top-token lists).
    pub fn piece(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_else(|_| format!("<{id}>"))
    }

    /// How token `id` can begin an answer.
    pub fn token_start(&self, id: u32) -> TokenStart {
        self.decode(&[id]).map_or(TokenStart::Unknown, |piece| TokenStart::of(&piece))
    }

    /// How each token of the vocabulary can begin an answer, by id. The first call decodes the whole
    /// vocabulary (a fraction of a second for 262,144 tokens); later ones return what it found.
    pub fn token_starts(&self) -> &[TokenStart] {
        self.starts
            .get_or_init(|| (0..self.vocab_size() as u32).into_par_iter().map(|id| self.token_start(id)).collect())
    }

    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// A token used to pad batches; its outputs are never read.
    pub fn pad_id(&self) -> u32 {
        self.inner.get_padding().map(|p| p.pad_id).or(self.bos).unwrap_or(0)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns a token stream into text increments, holding back bytes of a character split across tokens.
#[derive(Default)]
pub struct TextStream {
    tokens: Vec<u32>,
    emitted: usize,
}

impl TextStream {
    /// Adds a token and returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, token: u32) -> String {
        self.tokens.push(token);
        let text = tokenizer.decode(&self.tokens).unwrap_or_default();
        if text.ends_with('\u{fffd}') || text.len() < self.emitted || !text.is_char_boundary(self.emitted) {
            return String::new();
        }
        let piece = text[self.emitted..].to_string();
        self.emitted = text.len();
        piece
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::scripts::Script;

    #[test]
    fn a_token_begins_an_answer_at_its_first_character_other_than_a_space() {
        let latin = TokenStart::Opens(Opening::Letter(Some(Script::Latin)));
        assert_eq!(TokenStart::of(" San"), latin);
        assert_eq!(TokenStart::of("San\n"), latin);
        assert_eq!(TokenStart::of("ซาน"), TokenStart::Opens(Opening::Letter(Some(Script::Thai))));
        assert_eq!(TokenStart::of(" 1812"), TokenStart::Opens(Opening::Digit));
        for mark in ["?", " \"", "?\nSan", ", "] {
            assert_eq!(TokenStart::of(mark), TokenStart::Opens(Opening::Mark), "{mark:?}");
        }
        for blank in [" ", "", "\u{a0}"] {
            assert_eq!(TokenStart::of(blank), TokenStart::Blank, "{blank:?}");
        }
        for line_break in ["\n", "\n\n", " \r\n", "\nSan"] {
            assert_eq!(TokenStart::of(line_break), TokenStart::LineBreak, "{line_break:?}");
        }
        assert_eq!(TokenStart::of("\u{fffd}"), TokenStart::Unknown);
    }
}

//! Text around the model: prompt/target token pairs, KL prompts about the subject, and paraphrases
//! made from templates (no model needed).

use color_eyre::eyre::eyre;
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use crate::runtime::{GenerateOptions, GenerationDeltas, Model, PromptTarget, Sampling, TextStream, Tokenizer};
use crate::text::languages::{self, Templates};
use crate::text::normalize::contains_ignoring_case;
use crate::Result;

/// Token ids of `prompt` followed by `target`, split where the prompt ends. The pair is tokenized
/// together ("prompt target", as the MzsRE/Bi-ZsRE evaluation code does) so the target's first token
/// is the one the model would produce after the prompt. After a prompt that ends its line (a chat
/// template's assistant turn) the target starts the next line, with no space.
pub fn teacher_forcing_pair(tokenizer: &Tokenizer, prompt: &str, target: &str) -> Result<PromptTarget> {
    let separator = if prompt.ends_with('\n') { "" } else { " " };
    let target = format!("{separator}{}", target.trim());
    let prompt_ids = tokenizer.encode_prompt(prompt)?;
    let joined = tokenizer.encode_prompt(&format!("{prompt}{target}"))?;
    if joined.len() > prompt_ids.len() && joined.starts_with(&prompt_ids) {
        return Ok(PromptTarget { target: joined[prompt_ids.len()..].to_vec(), prompt: prompt_ids });
    }
    // The last prompt token merged with the target: tokenize the target on its own.
    Ok(PromptTarget { target: tokenizer.encode_plain(&target)?, prompt: prompt_ids })
}

/// The pair an edit is trained on: [`teacher_forcing_pair`], with the line break that ends the answer
/// appended when `end_line` (generation then stops after the answer instead of running on).
pub fn answer_pair(tokenizer: &Tokenizer, prompt: &str, target: &str, end_line: bool) -> Result<PromptTarget> {
    let mut pair = teacher_forcing_pair(tokenizer, prompt, target)?;
    if end_line {
        pair.target.extend(tokenizer.encode_plain("\n")?);
    }
    Ok(pair)
}

/// Prompts about the subject under other relations ("{subject} is a"), whose next-token distribution
/// the KL term keeps as it was.
pub fn kl_prompts(lang: &str, subject: &str) -> Vec<String> {
    fill(&languages::templates(lang, subject).kl, subject)
}

/// Questions about the subject under other relations, in the language (the generic English ones for a
/// language not in the table): the KL term keeps their answers as they were, so an edit that fires on
/// them does not answer them with its new target. One of them may ask the edited relation itself; the
/// caller drops those (see `scope::other_relation_questions`).
pub fn other_relation_questions(lang: &str, subject: &str) -> Vec<String> {
    fill(&languages::templates(lang, subject).other_questions, subject)
}

fn fill(templates: &[String], subject: &str) -> Vec<String> {
    templates.iter().map(|t| t.replace("{}", subject)).collect()
}

/// Paraphrases of a question from the language's fixed frames; every one keeps the subject verbatim.
pub fn template_paraphrases(lang: &str, prompt: &str) -> Vec<String> {
    let Templates { question, answer, tell, .. } = languages::templates(lang, prompt);
    let prompt = prompt.trim();
    let frames = [
        format!("{question} {prompt}"),
        format!("{question} {prompt}\n{answer}"),
        format!("{prompt}\n{answer}"),
        format!("{tell} {prompt}"),
        format!("Q: {prompt}\nA:"),
    ];
    dedupe(frames.into_iter().map(|f| f.trim().to_string()), prompt, None)
}

/// Drops duplicates, the prompt itself, and (when a subject is given) phrasings that lost the subject.
pub fn dedupe(candidates: impl IntoIterator<Item = String>, prompt: &str, subject: Option<&str>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for candidate in candidates {
        let candidate = candidate.trim().to_string();
        let keeps_subject = subject.is_none_or(|s| contains_ignoring_case(&candidate, s));
        if !candidate.is_empty() && candidate != prompt && keeps_subject && !kept.contains(&candidate) {
            kept.push(candidate);
        }
    }
    kept
}

/// Where generated paraphrases come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ParaphraseSource {
    /// Fixed per-language frames around the prompt: fast, deterministic, no model.
    #[default]
    Templates,
    /// The loaded model rewrites the prompt from a few-shot example (sampled).
    Model,
    /// Model rewrites first, templates to fill up.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParaphraseSettings {
    pub source: ParaphraseSource,
    /// Paraphrases wanted per language (user-given ones count).
    pub count: usize,
}

impl Default for ParaphraseSettings {
    fn default() -> Self {
        Self { source: ParaphraseSource::Templates, count: 5 }
    }
}

/// Rewrites of `prompt` sampled from the model, cut at the first line break, keeping the subject.
pub fn model_paraphrases(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &str,
    subject: &str,
    count: usize,
) -> Result<Vec<String>> {
    let few_shot = format!(
        "Rewrite the question with other words, in the same language.\n\
         Question: What is the capital of France?\nRewrite: Which city is the capital of France?\n\
         Question: {}\nRewrite:",
        prompt.trim()
    );
    let ids = tokenizer.encode_prompt(&few_shot)?;
    let newline: Vec<u32> = tokenizer.encode_plain("\n")?;
    let mut candidates = Vec::new();
    // A few extra draws: some lose the subject or repeat the prompt.
    for seed in 0..(count * 2) as u64 {
        let options =
            GenerateOptions { max_new_tokens: 40, sampling: Sampling::TopP { temperature: 0.8, top_p: 0.95, seed } };
        let mut stream = TextStream::default();
        let mut text = String::new();
        model.generate(
            &ids,
            GenerationDeltas::NONE,
            &options,
            &[tokenizer.stop_ids(), &newline].concat(),
            &mut |token| {
                text.push_str(&stream.push(tokenizer, token));
                !text.contains('\n')
            },
        )?;
        candidates.push(text.lines().next().unwrap_or("").to_string());
    }
    let subject = contains_ignoring_case(prompt, subject).then_some(subject);
    let mut kept = dedupe(candidates, prompt.trim(), subject);
    kept.truncate(count);
    Ok(kept)
}

/// Gives every language of `group` generated paraphrases up to `settings.count` paraphrases in all
/// (the written ones count first).
/// `model` is needed only for [`ParaphraseSource::Model`] and [`ParaphraseSource::Both`].
pub fn fill_paraphrases(
    group: &mut EditGroup,
    settings: &ParaphraseSettings,
    model: Option<(&Model, &Tokenizer)>,
) -> Result<()> {
    for d in &mut group.descriptors {
        let written: Vec<String> = d.written_paraphrases().map(String::from).collect();
        // Made anew every time (deterministically), so a prompt edited since has no stale ones.
        let wanted = settings.count.saturating_sub(written.len());
        d.generated_paraphrases.clear();
        if wanted == 0 {
            continue;
        }
        let mut generated = Vec::new();
        if matches!(settings.source, ParaphraseSource::Model | ParaphraseSource::Both) {
            let (model, tokenizer) = model.ok_or_else(|| eyre!("model paraphrases need a loaded model"))?;
            generated.extend(model_paraphrases(model, tokenizer, &d.prompt, &d.subject, settings.count)?);
        }
        if matches!(settings.source, ParaphraseSource::Templates | ParaphraseSource::Both) {
            generated.extend(template_paraphrases(&d.lang, &d.prompt));
        }
        // A prompt may spell the subject differently (transliterated); only then is its absence no loss.
        let subject = contains_ignoring_case(&d.prompt, &d.subject).then_some(d.subject.as_str());
        let mut made = dedupe(generated, d.prompt.trim(), subject);
        made.retain(|p| !written.contains(p));
        made.truncate(wanted);
        d.generated_paraphrases = made;
    }
    Ok(())
}

//! `lafn chat`: line-based chat over stdin, answered with the cached edits a line retrieves. A line
//! `/asks [ID]` or `/not [ID]` tells the scope gate it erred on the question before (see
//! [`CachedEdits::teach`]), and that question is answered again.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use color_eyre::eyre::{bail, eyre};
use lafn::method::apply::{answer, describe_hit, entries_to_teach, AnswerOptions, CachedEdits, Retrieved};
use lafn::method::retrieve::Hit;
use lafn::runtime::PromptFrame;
use lafn::Result;

use super::args::{CacheArgs, ModelArgs};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[arg(long, allow_negative_numbers = true, default_value_t = 48)]
    max_tokens: usize,
    /// Answer without the cache (the unedited model).
    #[arg(long)]
    no_cache: bool,
    /// Keep generating after the answer's first line (raw continuation) instead of stopping there.
    #[arg(long)]
    raw: bool,
    /// How questions are put to the model: `auto` (its chat template if it has one, else `qa`),
    /// `template`, `qa` (`Q: ...` / `A:`) or `raw` (completion). Default: the settings' `frame`.
    #[arg(long, value_enum)]
    frame: Option<PromptFrame>,
    /// Method settings as JSON; chat uses its `retrieval`, `scope` and `frame` parts.
    #[arg(long)]
    settings: Option<PathBuf>,
}

/// Answers each non-empty line of stdin, then says which cached edits fired.
pub fn run(args: ChatArgs) -> Result<()> {
    let settings = args.settings.map(|path| lafn::method::load_settings(&path)).transpose()?.unwrap_or_default();
    let loaded = args.model.load()?;
    let mut cached = if args.no_cache {
        None
    } else {
        let cache = args.cache.open(&loaded.info.path)?;
        eprintln!("{} cached edits in {}", cache.list().len(), cache.dir().display());
        Some(CachedEdits::new(cache, &loaded.model, &loaded.tokenizer, settings.retrieval, settings.scope)?)
    };
    let frame = args.frame.unwrap_or(settings.frame);
    if frame == PromptFrame::Auto {
        if let Some(warning) = loaded.tokenizer.chat_template_warning() {
            eprintln!("warning: {warning}");
        }
    }
    let options = AnswerOptions { stop_at_line_end: !args.raw, frame, ..AnswerOptions::chat(args.max_tokens) };
    let mut stdout = std::io::stdout();
    let mut warned = HashSet::new();
    // The last question answered, with the entries that acted on it and those it named that did not.
    let mut last: Option<(String, Vec<Hit>, Vec<Hit>)> = None;
    for line in std::io::stdin().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let question = match Correction::parse(&line) {
            None => line,
            Some(correction) => match correction.and_then(|c| teach(cached.as_mut(), last.as_ref(), c)) {
                // Answered again: what the user sees now.
                Ok(question) => question,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    outln!("[not taught]");
                    continue;
                }
            },
        };
        let reply = answer(&loaded.model, &loaded.tokenizer, cached.as_mut(), &question, &options, &mut |piece| {
            let _ = write!(stdout, "{piece}");
            let _ = stdout.flush();
            true
        });
        // One bad line (too long for the model, say) is reported; the next lines are answered.
        match reply {
            Ok(reply) => {
                outln!();
                print_retrieved(&reply.retrieved, &mut warned);
                last = Some((question, reply.retrieved.hits, reply.retrieved.out_of_scope));
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                outln!("[not answered]");
                last = None;
            }
        }
    }
    Ok(())
}

/// A line telling the gate about the question before: `/asks [ID]` (it asks the fact of an entry it
/// named that did not act) or `/not [ID]` (it does not ask the fact of an entry that acted).
struct Correction<'a> {
    asks: bool,
    id: Option<&'a str>,
}

impl<'a> Correction<'a> {
    /// `None`: the line is a question. A line of one word made of `/` and letters is a command.
    fn parse(line: &'a str) -> Option<Result<Self>> {
        let mut words = line.split_whitespace();
        let command = words.next()?;
        let asks = match command {
            "/asks" => true,
            "/not" => false,
            _ if command.len() > 1 && command.starts_with('/') && command[1..].chars().all(char::is_alphabetic) => {
                return Some(Err(eyre!(
                    "unknown command {command}: `/asks [ID]` (the question before asks the fact of an edit it \
                     named that did not act) or `/not [ID]` (it does not ask the fact of the edits that acted)"
                )));
            }
            _ => return None,
        };
        Some(Ok(Self { asks, id: words.next() }))
    }
}

/// Teaches the gate `correction` about the last question; returns that question, to answer again.
fn teach(
    cached: Option<&mut CachedEdits>,
    last: Option<&(String, Vec<Hit>, Vec<Hit>)>,
    correction: Correction,
) -> Result<String> {
    let Some(cached) = cached else { bail!("chat runs without the cache (--no-cache): there is nothing to teach") };
    let Some((question, acted, did_not)) = last else { bail!("no question was answered yet") };
    for hit in entries_to_teach(acted, did_not, correction.asks, correction.id)? {
        let kept = cached.teach(hit, question, correction.asks)?;
        let told = if correction.asks { "asks" } else { "does not ask" };
        outln!("[taught: \"{kept}\" {told} the fact of {}]", hit.entry_id);
    }
    Ok(question.clone())
}

/// The edits that fired and those named but out of scope; a damaged entry is warned about once.
fn print_retrieved(retrieved: &Retrieved, warned: &mut HashSet<String>) {
    for (id, reason) in &retrieved.damaged {
        if warned.insert(id.clone()) {
            eprintln!("warning: skipped damaged cache entry `{id}`: {reason}");
        }
    }
    let fired: Vec<String> = retrieved.hits.iter().map(describe_hit).collect();
    outln!("[fired: {}]", if fired.is_empty() { "none".to_string() } else { fired.join(", ") });
    if let Some(question) = &retrieved.read_as {
        outln!("[read as: {question}]");
    }
    if !retrieved.out_of_scope.is_empty() {
        let skipped: Vec<String> = retrieved.out_of_scope.iter().map(describe_hit).collect();
        outln!("[named but not asked (below the scope threshold, nearer another relation or a question taught not to ask it, or another edit of the subject nearer or newer): {}]", skipped.join(", "));
    }
}

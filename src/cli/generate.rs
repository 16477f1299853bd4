//! `lafn generate`: continue a prompt, streamed to stdout.

use std::io::Write;

use clap::Args;
use color_eyre::eyre::bail;
use lafn::runtime::{GenerateOptions, GenerationDeltas, Sampling, TextStream};
use lafn::Result;

use super::args::ModelArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, short)]
    prompt: String,
    #[arg(long, allow_negative_numbers = true, default_value_t = 32)]
    max_tokens: usize,
    /// Sample at this temperature instead of greedy decoding.
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f64>,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.95)]
    top_p: f64,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let GenerateArgs { model, prompt, max_tokens, temperature, top_p, seed } = args;
    if prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    if let Some(t) = temperature.filter(|t| !(t.is_finite() && *t > 0.0)) {
        bail!("--temperature must be a finite number above 0 (leave it out for greedy decoding), not {t}");
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        bail!("--top-p must be above 0 and at most 1, not {top_p}");
    }
    let loaded = model.load()?;
    loaded.tokenizer.check_length("the prompt", &prompt, loaded.model.config().max_input_tokens())?;
    let options = GenerateOptions {
        max_new_tokens: max_tokens,
        sampling: match temperature {
            Some(temperature) => Sampling::TopP { temperature, top_p, seed },
            None => Sampling::Greedy,
        },
    };
    let prompt_ids = loaded.tokenizer.encode_prompt(&prompt)?;
    let mut stream = TextStream::default();
    let mut stdout = std::io::stdout();
    out!("{prompt}");
    loaded.model.generate(
        &prompt_ids,
        GenerationDeltas::NONE,
        &options,
        loaded.tokenizer.stop_ids(),
        &mut |token| {
            let piece = stream.push(&loaded.tokenizer, token);
            let _ = write!(stdout, "{piece}");
            let _ = stdout.flush();
            true
        },
    )?;
    outln!();
    Ok(())
}

//! The `lafn` command: the TUI by default, and subcommands that drive the same library.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{bail, WrapErr};
use lafn::fetch::{self, FetchEvent, ModelFiles};
use lafn::runtime::{GenerateOptions, LoadedModel, Sampling, WeightMode};
use lafn::Result;

#[derive(Parser)]
#[command(name = "lafn", version, about = "Multilingual knowledge editing with language-agnostic factual neurons")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Download a built-in model into the data directory (default: the default model).
    FetchModel {
        /// gemma-3-270m, smollm2-135m or qwen2.5-coder-0.5b.
        name: Option<String>,
        /// Download again even if the files are present.
        #[arg(long)]
        force: bool,
    },
    /// Continue a prompt with the model.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, short)]
        prompt: String,
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// Sample at this temperature instead of greedy decoding.
        #[arg(long)]
        temperature: Option<f64>,
        #[arg(long, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Show a model's architecture, size and storage types.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Measure forward, decode and edit-step speed and peak memory.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Tokens decoded in the decode benchmark.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// A built-in name, a .gguf file, a directory with config.json + safetensors, or an HF repo id.
    #[arg(long, short, default_value = fetch::DEFAULT_MODEL)]
    model: String,
    /// tokenizer.json to use instead of the one found beside the model or in its GGUF.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Dequantize all weights to f32 (the differentiable mode used for editing).
    #[arg(long)]
    dense: bool,
}

impl ModelArgs {
    fn files(&self) -> Result<ModelFiles> {
        let mut files = fetch::resolve(&self.model, &mut print_fetch_progress)?;
        if let Some(tokenizer) = &self.tokenizer {
            files.tokenizer = Some(tokenizer.clone());
        }
        Ok(files)
    }

    fn mode(&self) -> WeightMode {
        if self.dense {
            WeightMode::Dense
        } else {
            WeightMode::Quantized
        }
    }

    fn load(&self) -> Result<LoadedModel> {
        let files = self.files()?;
        LoadedModel::load(&files, self.mode()).wrap_err_with(|| format!("cannot load model `{}`", self.model))
    }
}

fn print_fetch_progress(event: FetchEvent) {
    let mut err = std::io::stderr();
    match event {
        FetchEvent::Stage(stage) => {
            let _ = writeln!(err, "\r{stage}");
        }
        FetchEvent::Bytes { done, total } => {
            let fraction = if total == 0 { 0.0 } else { done as f64 / total as f64 };
            let filled = (fraction * 30.0).round() as usize;
            let _ = write!(
                err,
                "\r[{}{}] {:5.1}% {:.1}/{:.1} MB",
                "#".repeat(filled.min(30)),
                " ".repeat(30 - filled.min(30)),
                fraction * 100.0,
                done as f64 / 1e6,
                total as f64 / 1e6
            );
            if done >= total {
                let _ = writeln!(err);
            }
        }
    }
}

fn main() -> Result<()> {
    color_eyre::install()?;
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("The terminal UI is coming; meanwhile see `lafn --help` for the subcommands.");
            Ok(())
        }
        Some(Command::FetchModel { name, force }) => {
            let name = name.as_deref().unwrap_or(fetch::DEFAULT_MODEL);
            let files = fetch::fetch_builtin(name, force, &mut print_fetch_progress)?;
            println!("{}", files.weights.display());
            if let Some(tokenizer) = files.tokenizer {
                println!("{}", tokenizer.display());
            }
            Ok(())
        }
        Some(Command::Generate {
            model,
            prompt,
            max_tokens,
            temperature,
            top_p,
            seed,
        }) => {
            if prompt.trim().is_empty() {
                bail!("the prompt is empty");
            }
            let loaded = model.load()?;
            let options = GenerateOptions {
                max_new_tokens: max_tokens,
                sampling: match temperature {
                    Some(temperature) if temperature > 0.0 => Sampling::TopP {
                        temperature,
                        top_p,
                        seed,
                    },
                    _ => Sampling::Greedy,
                },
            };
            let prompt_ids = loaded.tokenizer.encode_prompt(&prompt)?;
            let mut stream = lafn::runtime::TextStream::default();
            let mut stdout = std::io::stdout();
            print!("{prompt}");
            loaded.model.generate(
                &prompt_ids,
                &[],
                &options,
                loaded.tokenizer.stop_ids(),
                &mut |token| {
                    let piece = stream.push(&loaded.tokenizer, token);
                    let _ = write!(stdout, "{piece}");
                    let _ = stdout.flush();
                    true
                },
            )?;
            println!();
            Ok(())
        }
        Some(Command::Inspect { model }) => {
            let loaded = model.load()?;
            print!("{}", lafn::runtime::describe(&loaded.info));
            Ok(())
        }
        Some(Command::Bench { model, decode_tokens }) => {
            let files = model.files()?;
            let report = lafn::bench::run(&files, decode_tokens)?;
            print!("{report}");
            Ok(())
        }
    }
}

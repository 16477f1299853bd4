//! The `lafn` command: the TUI by default, and subcommands that drive the same library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{bail, WrapErr};
use lafn::eval::{Dataset, EvalConfig, EvalMethod, EvalModels, EvalPhase, EvalRequest, Progress, Scoring, Stage};
use lafn::fetch::{self, FetchEvent, ModelFiles};
use lafn::method::apply::{answer, describe_hit, AnswerOptions, CachedEdits};
use lafn::method::cache::{default_cache_dir, EditCache};
use lafn::method::pipeline::{check_group, locate_group, run_edit, EditEvent, EditModels};
use lafn::method::{EditGroup, LayerChoice, MethodSettings, StopReason};
use lafn::runtime::{AnswerEdits, GenerateOptions, LoadedModel, Sampling, WeightMode};
use lafn::Result;

#[derive(Parser)]
#[command(name = "lafn", version, about = "Multilingual knowledge editing with language-agnostic factual neurons")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tui: TuiArgs,
}

/// Options of the terminal UI (`lafn` without a subcommand).
#[derive(Args)]
struct TuiArgs {
    /// Model to load at start: a built-in name (fetched on first start), a path or an HF repo id.
    #[arg(long, short, default_value = fetch::DEFAULT_MODEL)]
    model: String,
    /// Sessions directory (default: $LAFN_SESSIONS_DIR, else ./sessions).
    #[arg(long)]
    sessions_dir: Option<PathBuf>,
    /// Edit cache directory (default: the data directory's cache for the model).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Session to open at start (default: a new one).
    #[arg(long)]
    session: Option<String>,
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
        #[arg(long, allow_negative_numbers = true, default_value_t = 32)]
        max_tokens: usize,
        /// Sample at this temperature instead of greedy decoding.
        #[arg(long, allow_negative_numbers = true)]
        temperature: Option<f64>,
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
        seed: u64,
    },
    /// Locate the language-agnostic factual neurons of an edit group and print per-layer statistics.
    Locate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        group: GroupArgs,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Locate and optimize update values for an edit group, print the losses of every step, and
    /// store the result in the edit cache.
    Edit {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        group: GroupArgs,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Line-based chat over stdin: each answer uses the cached edits whose subject the line mentions.
    Chat {
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
        /// Method settings as JSON; chat uses its `retrieval` part.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// List, show or remove cached edits of a model.
    Cache {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Show a model's architecture, size and storage types.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Evaluate editing methods on MzsRE or Bi-ZsRE: a markdown table per metric on stdout, the full
    /// report as JSON with --out, and per-record results in a state file beside it to resume from.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// mzsre or bizsre.
        #[arg(long)]
        dataset: Dataset,
        /// The benchmark's JSONL file.
        #[arg(long)]
        file: PathBuf,
        /// Languages to edit and score (comma-separated; default: all of the dataset's).
        #[arg(long, value_delimiter = ',')]
        langs: Option<Vec<String>>,
        /// Evaluate only the first N records.
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<usize>,
        /// Methods (comma-separated): unedited, lu-lafns, lu-lafns-nocache, random-neurons, ft-l, icl, or all.
        #[arg(long = "method", value_delimiter = ',', default_value = "all")]
        methods: Vec<String>,
        /// Accumulate all edits in one cache and score every record after all edits.
        #[arg(long)]
        sequential: bool,
        /// Method and evaluation settings as one JSON file (see docs/results.md).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Write the report as JSON here; results are also kept in <stem>.state.jsonl beside it, and a
        /// rerun with the same settings resumes from them.
        #[arg(long)]
        out: Option<PathBuf>,
        /// How answers are scored: teacher-forced (the benchmarks' way), generate (the first line of
        /// the greedy answer, as `lafn chat` gives it), or both.
        #[arg(long, value_enum, default_value_t = Scoring::Both)]
        scoring: Scoring,
    },
    /// Measure forward, decode and edit-step speed and peak memory.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Tokens decoded in the decode benchmark.
        #[arg(long, allow_negative_numbers = true, default_value_t = 64)]
        decode_tokens: usize,
        /// Also time locating and editing the first group of this file (e.g. an MzsRE record).
        #[arg(long)]
        group: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// A built-in name, a .gguf file, a directory with config.json + safetensors, or an HF repo id.
    #[arg(long, short, global = true, default_value = fetch::DEFAULT_MODEL)]
    model: String,
    /// tokenizer.json to use instead of the one found beside the model or in its GGUF.
    #[arg(long, global = true)]
    tokenizer: Option<PathBuf>,
    /// Dequantize all weights to f32 (the differentiable mode used for editing).
    #[arg(long)]
    dense: bool,
}

#[derive(Subcommand)]
enum CacheAction {
    /// One line per cached edit.
    List,
    /// Everything stored for one edit.
    Show { id: String },
    /// Remove one edit.
    Rm { id: String },
}

#[derive(Args)]
struct CacheArgs {
    /// Edit cache directory (default: the data directory's cache for this model).
    // Global: `lafn cache list --cache-dir D` works as well as `lafn cache --cache-dir D list`.
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    fn open(&self, weights: &std::path::Path) -> Result<EditCache> {
        let fingerprint = lafn::runtime::fingerprint(weights)?;
        EditCache::open(&self.dir(&fingerprint)?, &fingerprint)
    }

    fn dir(&self, fingerprint: &str) -> Result<PathBuf> {
        match &self.cache_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_cache_dir(fingerprint),
        }
    }
}

#[derive(Args)]
struct GroupArgs {
    /// Edit groups as JSON or JSONL: our format or MzsRE / Bi-ZsRE records.
    #[arg(long, short)]
    group: PathBuf,
    /// Which group of the file (1 = first).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    index: usize,
    /// Keep only these languages (comma-separated codes).
    #[arg(long, value_delimiter = ',')]
    langs: Option<Vec<String>>,
}

impl GroupArgs {
    fn load(&self) -> Result<EditGroup> {
        EditGroup::load_one(&self.group, self.index, self.langs.as_deref())
    }
}

#[derive(Args)]
struct SettingsArgs {
    /// Method settings as JSON (see README); flags below override single values.
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Frequency threshold beta for factual neurons.
    #[arg(long, allow_negative_numbers = true)]
    beta: Option<f32>,
    /// Edit exactly these layers (comma-separated) instead of choosing by the data.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    #[arg(long, allow_negative_numbers = true)]
    steps: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Weight lambda of the KL loss.
    #[arg(long, allow_negative_numbers = true)]
    kl_weight: Option<f64>,
}

impl SettingsArgs {
    fn load(&self) -> Result<MethodSettings> {
        let mut settings: MethodSettings = match &self.settings {
            Some(path) => lafn::method::load_settings(path)?,
            None => MethodSettings::default(),
        };
        if let Some(beta) = self.beta {
            settings.locate.beta = beta;
        }
        if let Some(layers) = &self.layers {
            settings.locate.layers = LayerChoice::Fixed(layers.clone());
        }
        if let Some(steps) = self.steps {
            settings.edit.steps = steps;
        }
        if let Some(lr) = self.lr {
            settings.edit.learning_rate = lr;
        }
        if let Some(kl_weight) = self.kl_weight {
            settings.edit.kl_weight = kl_weight;
        }
        settings.validate()?;
        Ok(settings)
    }
}

impl ModelArgs {
    fn files(&self) -> Result<ModelFiles> {
        let mut files = fetch::resolve(&self.model, &mut fetch_progress())?;
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

/// Fetch progress on stderr: a bar redrawn in place on a terminal; in a log (not a terminal), a line
/// per tenth, so CI logs do not fill with thousands of redraws.
fn fetch_progress() -> impl FnMut(FetchEvent) {
    let on_terminal = std::io::stderr().is_terminal();
    let mut last_shown = None;
    move |event| {
        let mut err = std::io::stderr();
        match event {
            FetchEvent::Stage(stage) => {
                last_shown = None;
                let _ = writeln!(err, "\r{stage}");
            }
            FetchEvent::Bytes { done, total } => {
                let fraction = if total == 0 { 0.0 } else { done as f64 / total as f64 };
                let step = (fraction * if on_terminal { 1000.0 } else { 10.0 }) as u64;
                if last_shown == Some(step) {
                    return;
                }
                last_shown = Some(step);
                let filled = ((fraction * 30.0).round() as usize).min(30);
                let bar = format!(
                    "[{}{}] {:5.1}% {:.1}/{:.1} MB",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    fraction * 100.0,
                    done as f64 / 1e6,
                    total as f64 / 1e6
                );
                let _ = if on_terminal { write!(err, "\r{bar}") } else { writeln!(err, "{bar}") };
                if on_terminal && done >= total {
                    let _ = writeln!(err);
                }
            }
        }
    }
}

fn main() -> Result<()> {
    // RUST_BACKTRACE=1 is for panics: library errors (candle's) would otherwise carry backtrace frames
    // in the very message the user reads. RUST_LIB_BACKTRACE=1 still asks for them explicitly. Set
    // before any thread starts or any error is built.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // Colours only on a terminal: errors written to a file or a pipe stay plain text.
    let theme = if std::io::stderr().is_terminal() {
        color_eyre::config::Theme::dark()
    } else {
        color_eyre::config::Theme::new()
    };
    // No "run with RUST_BACKTRACE=1" hints: the messages are for users (see RUST_LIB_BACKTRACE above).
    color_eyre::config::HookBuilder::default().theme(theme).display_env_section(false).install()?;
    let cli = Cli::parse();
    match cli.command {
        None => {
            let TuiArgs { model, sessions_dir, cache_dir, session } = cli.tui;
            if let Some(name) = &session {
                lafn::session::validate_name(name)?;
            }
            lafn::tui::run(lafn::tui::Options {
                model,
                sessions_dir: sessions_dir.unwrap_or_else(lafn::session::default_sessions_dir),
                cache_dir,
                session,
                log_file: lafn::storage::data_dir()?.join("logs").join("lafn.log"),
            })
        }
        Some(Command::FetchModel { name, force }) => {
            let name = name.as_deref().unwrap_or(fetch::DEFAULT_MODEL);
            let files = fetch::fetch_builtin(name, force, &mut fetch_progress())?;
            println!("{}", files.weights.display());
            if let Some(tokenizer) = files.tokenizer {
                println!("{}", tokenizer.display());
            }
            Ok(())
        }
        Some(Command::Generate { model, prompt, max_tokens, temperature, top_p, seed }) => {
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
            let mut stream = lafn::runtime::TextStream::default();
            let mut stdout = std::io::stdout();
            print!("{prompt}");
            loaded.model.generate(
                &prompt_ids,
                AnswerEdits::NONE,
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
        Some(Command::Locate { model, group, settings }) => {
            let settings = settings.load()?;
            let group = group.load()?;
            let loaded = model.load()?;
            // Located on the dense weights, as `lafn edit` locates: both report the same layers.
            let dense = loaded.load_weights(WeightMode::Dense)?;
            let models = EditModels { dense: &dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
            let location = locate_group(models, group, &settings, &mut |_| {})?;
            print!("{}", lafn::method::describe_located(&location.located));
            Ok(())
        }
        Some(Command::Edit { model, group, settings, cache }) => {
            let settings = settings.load()?;
            let group = group.load()?;
            let loaded = model.load()?;
            let dense = loaded.load_weights(WeightMode::Dense)?;
            let models = EditModels { dense: &dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
            // The input is checked and the cache proven usable before the edit is computed. A cache that does
            // not exist yet is created once the edit succeeded: a failed edit leaves nothing behind.
            check_group(models, &group)?;
            let fingerprint = &loaded.info.fingerprint;
            let cache_dir = cache.dir(fingerprint)?;
            let existing = if cache_dir.exists() {
                let cache = EditCache::open(&cache_dir, fingerprint)?;
                cache.check_writable()?;
                Some(cache)
            } else {
                lafn::storage::check_creatable(&cache_dir)
                    .wrap_err_with(|| format!("the edit cache {} cannot be created", cache_dir.display()))?;
                None
            };
            let langs = group.langs().join(" ");
            let cancel = std::sync::atomic::AtomicBool::new(false);
            let run = run_edit(models, group, &settings, &cancel, &mut |event| match event {
                EditEvent::Paraphrased(_) => {}
                EditEvent::Located(located) => {
                    println!(
                        "located {} neurons in layers {:?}",
                        located.neuron_count(),
                        located.selected.keys().collect::<Vec<_>>()
                    );
                    println!("step  target     kl      total   P(target): {langs}");
                }
                EditEvent::Step(s) => {
                    let probs: Vec<String> = s.target_probs.iter().map(|p| format!("{p:.2}")).collect();
                    println!(
                        "{:4}  {:8.4} {:7.4} {:8.4}  {}",
                        s.step,
                        s.target_loss,
                        s.kl_loss,
                        s.total_loss,
                        probs.join(" ")
                    );
                }
            })?;
            println!(
                "stopped: {:?} (locate {:.1} s, optimize {:.1} s)",
                run.outcome.stop, run.locate_seconds, run.optimize_seconds
            );
            if run.outcome.stop == StopReason::Cancelled {
                return Ok(());
            }
            let cache = match existing {
                Some(cache) => cache,
                None => EditCache::open(&cache_dir, fingerprint)?,
            };
            let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
            let mut cached =
                CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())?;
            let (group, located, outcome) = (&run.group, &run.located, &run.outcome);
            let id = cached.insert(model, tokenizer, group, located, &outcome.update, &settings, &outcome.history)?;
            println!("cached as {id} in {}", cache_dir.display());
            Ok(())
        }
        Some(Command::Chat { model, cache, max_tokens, no_cache, raw, settings }) => {
            let settings = settings.map(|path| lafn::method::load_settings(&path)).transpose()?.unwrap_or_default();
            let loaded = model.load()?;
            let mut cached = if no_cache {
                None
            } else {
                let cache = cache.open(&loaded.info.path)?;
                eprintln!("{} cached edits in {}", cache.list().len(), cache.dir().display());
                Some(CachedEdits::new(cache, &loaded.model, &loaded.tokenizer, settings.retrieval, settings.scope)?)
            };
            let options = AnswerOptions { stop_at_line_end: !raw, ..AnswerOptions::chat(max_tokens) };
            let mut stdout = std::io::stdout();
            let mut warned = std::collections::HashSet::new();
            for line in std::io::stdin().lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let reply = answer(&loaded.model, &loaded.tokenizer, cached.as_mut(), &line, &options, &mut |piece| {
                    let _ = write!(stdout, "{piece}");
                    let _ = stdout.flush();
                    true
                });
                // One bad line (too long for the model, say) is reported; the next lines are answered.
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        println!("[not answered]");
                        continue;
                    }
                };
                println!();
                let retrieved = &reply.retrieved;
                for (id, reason) in &retrieved.damaged {
                    if warned.insert(id.clone()) {
                        eprintln!("warning: skipped damaged cache entry `{id}`: {reason}");
                    }
                }
                let fired: Vec<String> = retrieved.hits.iter().map(describe_hit).collect();
                println!("[fired: {}]", if fired.is_empty() { "none".to_string() } else { fired.join(", ") });
                if !retrieved.out_of_scope.is_empty() {
                    let skipped: Vec<String> = retrieved.out_of_scope.iter().map(describe_hit).collect();
                    println!("[named but not asked (scope below threshold): {}]", skipped.join(", "));
                }
            }
            Ok(())
        }
        Some(Command::Cache { model, cache, action }) => {
            // Reading a cache never creates one: a mistyped directory is an error, not a new empty cache.
            if let Some(dir) = cache.cache_dir.as_ref().filter(|dir| !dir.is_dir()) {
                bail!("there is no edit cache at {}", dir.display());
            }
            let files = model.files()?;
            let mut cache = cache.open(&files.weights)?;
            for warning in cache.warnings() {
                eprintln!("warning: {warning}");
            }
            match action {
                CacheAction::List => {
                    // Every entry is read in full, so a damaged one is marked here, not found in chat.
                    let hidden = lafn::runtime::WeightSource::open(&files.weights)?.1.hidden_size;
                    let rows = cache.list().to_vec();
                    for row in rows {
                        let health = match cache.get(&row.id).and_then(|_| cache.load_update(&row.id, hidden)) {
                            Ok(_) => String::new(),
                            Err(e) => format!("  DAMAGED (chat skips it): {e:#}"),
                        };
                        println!(
                            "{}  {} neurons  [{}]  {}{health}",
                            row.id,
                            row.neuron_count,
                            row.langs.join(","),
                            row.subjects.join(" | ")
                        );
                    }
                }
                CacheAction::Show { id } => println!("{}", serde_json::to_string_pretty(&cache.get(&id)?)?),
                CacheAction::Rm { id } => {
                    cache.remove(&id)?;
                    println!("removed {id}");
                }
            }
            Ok(())
        }
        Some(Command::Inspect { model }) => {
            let loaded = model.load()?;
            print!("{}", lafn::runtime::describe(&loaded.info));
            Ok(())
        }
        Some(Command::Eval { model, dataset, file, langs, limit, methods, sequential, settings, out, scoring }) => {
            if limit == Some(0) {
                bail!("--limit 0 evaluates nothing: give at least 1 (or leave it out for every record)");
            }
            let methods = parse_methods(&methods)?;
            let config = settings.map(|path| EvalConfig::load(&path)).transpose()?.unwrap_or_default();
            let loaded = model.load()?;
            let dense = loaded.load_weights(WeightMode::Dense)?;
            let request = EvalRequest {
                dataset,
                file,
                langs,
                limit,
                methods,
                sequential,
                config,
                state_file: out.as_deref().map(lafn::eval::state_path_for),
                scoring,
            };
            if let Some(state) = &request.state_file {
                eprintln!("per-record results: {}", state.display());
            }
            let cancel = std::sync::atomic::AtomicBool::new(false);
            let mut bar = ProgressBar::default();
            let report = lafn::eval::run(EvalModels { loaded: &loaded, dense: &dense }, &request, &cancel, &mut |p| {
                bar.show(p)
            })?;
            print!("{}", report.markdown());
            if let Some(out) = &out {
                lafn::storage::write_json_atomic(out, &report)?;
                eprintln!("report written to {}", out.display());
            }
            Ok(())
        }
        Some(Command::Bench { model, decode_tokens, group }) => {
            let files = model.files()?;
            let group = group.map(|path| EditGroup::load_one(&path, 1, None)).transpose()?;
            let report = lafn::bench::run(&files, decode_tokens, group)?;
            print!("{report}");
            Ok(())
        }
    }
}

/// `--method` values: method names, or `all`.
fn parse_methods(names: &[String]) -> Result<Vec<EvalMethod>> {
    let mut methods = Vec::new();
    for name in names {
        if name == "all" {
            methods.extend(EvalMethod::ALL);
        } else {
            methods.push(name.parse()?);
        }
    }
    Ok(methods)
}

/// A one-line progress bar with ETA on stderr, from the records finished since this run started.
#[derive(Default)]
struct ProgressBar {
    phase: Option<(EvalPhase, std::time::Instant, usize)>,
}

impl ProgressBar {
    fn show(&mut self, p: Progress) {
        if self.phase.is_none_or(|(phase, _, _)| phase != p.phase) {
            self.phase = Some((p.phase, std::time::Instant::now(), p.done));
        }
        let (_, started, first) = self.phase.expect("set above");
        let elapsed = started.elapsed().as_secs_f64();
        let finished = p.done.saturating_sub(first);
        let eta =
            if finished == 0 { "?".to_string() } else { clock(elapsed / finished as f64 * (p.total - p.done) as f64) };
        let width = 30;
        let filled = (p.done * width).checked_div(p.total).unwrap_or(width);
        let label = match p.phase {
            EvalPhase::Records => "records",
            EvalPhase::Editing => "editing",
            EvalPhase::Scoring => "scoring",
        };
        let stage = match p.stage {
            Some(Stage::Editing(method)) => format!("editing {method}"),
            Some(Stage::Scoring(method)) => format!("scoring {method}"),
            None => String::new(),
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2K{label} [{}{}] {}/{} ({} resumed)  elapsed {}  ETA {eta}  {stage}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            p.done,
            p.total,
            p.resumed,
            clock(elapsed)
        );
        if p.done == p.total && p.stage.is_none() {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

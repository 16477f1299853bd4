//! Arguments several subcommands share: the model, the edit cache, an edit group and method settings.

use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Args;
use color_eyre::eyre::WrapErr;
use lafn::fetch::{self, ModelFiles};
use lafn::method::cache::{default_cache_dir, EditCache};
use lafn::method::{EditGroup, LayerChoice, MethodSettings};
use lafn::runtime::{DeviceChoice, LoadedModel, WeightMode};
use lafn::Result;

use super::fetch_model::fetch_progress;

#[derive(Args)]
pub struct ModelArgs {
    /// A built-in name, a .gguf file, a directory with config.json + safetensors, or an HF repo id.
    #[arg(long, short, global = true, default_value = fetch::DEFAULT_MODEL)]
    model: String,
    /// tokenizer.json to use instead of the one found beside the model or in its GGUF.
    #[arg(long, global = true)]
    tokenizer: Option<PathBuf>,
    /// Dequantize all weights to f32 (the differentiable mode used for editing).
    #[arg(long)]
    dense: bool,
    /// Where the model computes (only the CPU in this build).
    #[arg(long, global = true, value_enum, default_value_t)]
    device: DeviceChoice,
}

impl ModelArgs {
    /// The model's files, fetched first if it is a built-in or hub model not yet on disk.
    pub fn files(&self) -> Result<ModelFiles> {
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

    /// The device chosen with `--device`; an error for one this build cannot use.
    pub fn device(&self) -> Result<Device> {
        self.device.open()
    }

    pub fn load(&self) -> Result<LoadedModel> {
        let files = self.files()?;
        LoadedModel::load(&files, self.mode(), &self.device()?)
            .wrap_err_with(|| format!("cannot load model `{}`", self.model))
    }
}

#[derive(Args)]
pub struct CacheArgs {
    /// Edit cache directory (default: the data directory's cache for this model).
    // Global: `lafn cache list --cache-dir D` works as well as `lafn cache --cache-dir D list`.
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The edit cache of the model whose weights are at `weights`.
    pub fn open(&self, weights: &Path) -> Result<EditCache> {
        let fingerprint = lafn::runtime::fingerprint(weights)?;
        EditCache::open(&self.dir(&fingerprint)?, &fingerprint)
    }

    pub fn dir(&self, fingerprint: &str) -> Result<PathBuf> {
        match &self.cache_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_cache_dir(fingerprint),
        }
    }
}

#[derive(Args)]
pub struct GroupArgs {
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
    pub fn load(&self) -> Result<EditGroup> {
        EditGroup::load_one(&self.group, self.index, self.langs.as_deref())
    }

    /// Every group of the file, each read and checked on its own ([`EditGroup::load_each`]).
    pub fn load_each(&self) -> Result<Vec<Result<EditGroup>>> {
        EditGroup::load_each(&self.group, self.langs.as_deref())
    }

    pub fn path(&self) -> &Path {
        &self.group
    }
}

#[derive(Args)]
pub struct SettingsArgs {
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
    /// AdamW learning rate (default: automatic, from the located neurons' value vectors)
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Weight lambda of the KL loss.
    #[arg(long, allow_negative_numbers = true)]
    kl_weight: Option<f64>,
}

impl SettingsArgs {
    /// The settings file (or the defaults) with the flags applied, validated.
    pub fn load(&self) -> Result<MethodSettings> {
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
            settings.edit.learning_rate = Some(lr);
        }
        if let Some(kl_weight) = self.kl_weight {
            settings.edit.kl_weight = kl_weight;
        }
        settings.validate()?;
        Ok(settings)
    }
}

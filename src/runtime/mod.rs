//! Model runtime: our own transformer code over candle tensors, with FFN hooks for locating and editing.

mod attention;
mod config;
mod frame;
mod gelu;
mod generate;
mod head;
mod model;
mod q8_tiles;
mod rms_norm;
mod scoring;
mod simd;
/// Test models; not part of the library proper (the `test-utils` feature, on for this crate's tests).
#[cfg(feature = "test-utils")]
pub mod tiny;
mod tokenizer;
mod weights;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::Device;
use color_eyre::eyre::bail;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::{Arch, ModelConfig, RopeStyle, MAX_INPUT_TOKENS};
pub use frame::{ChatFrame, ChatTemplate, PromptFrame};
pub use generate::{
    AnswerOpening, AnswerTrack, GenerateOptions, GenerationDeltas, Sampling, TrainedOpening, PREFILL_CHUNK,
};
pub use head::{CandidateLimits, HeadCandidates, HeadLosses, HeadObjective, KeptDistributions};
pub use model::{log_softmax_last_dim, softmax_last_dim, FfnDelta, ForwardOutput, Hooks, KvCache, Model};
pub use q8_tiles::kernel_description;
pub use scoring::{
    PaddedBatch, PrefixCachedBatch, PromptStates, PromptTarget, SharedPasses, TargetLogProbs, TeacherForced,
    TeacherForcingBatch,
};
pub use tokenizer::{TextStream, TokenStart, Tokenizer};
pub use weights::{WeightMode, WeightSource};

use crate::fetch::ModelFiles;
use crate::Result;

/// Sizes candle's thread pools to the CPUs this process may run on, and bounds how long its workers
/// spin for work, unless the user has set them (`RAYON_NUM_THREADS` or `CANDLE_NUM_THREADS`;
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT`). Call before any thread starts (it sets environment variables).
///
/// Threads: candle counts the machine's physical cores and ignores CPU affinity and cgroup quotas
/// (`taskset`, containers with a CPU limit, Slurm jobs), and its workers spin at a barrier after every
/// matmul: with more threads than CPUs each matmul waits for descheduled threads. Pinned to one of
/// two cores, 32 tokens took 10.6 s instead of 2.7 s.
///
/// Spinning: after each quantized matmul candle's workers spin 25,000 times before they sleep, about
/// a millisecond on the AMD EPYC measured (two cores). An edit follows each quantized product (the
/// LM head) with dense work on other threads (gemm's, rayon's), and the spinning took a core from
/// it: spinning at most 2,000 times, a 12-language optimization of the default model took 7.5 s
/// instead of 9.0 s and locating 2.5 s instead of 3.1 s (medians of 7-9 `lafn bench --group` runs
/// each), while decoding, whose matmuls follow each other within microseconds, stayed within the
/// same 13-17 ms a token (not spinning at all: 17.5-20.0). docs/results.md, stop 48.
pub fn fit_threads_to_allowed_cpus() {
    if std::env::var_os(SPIN_LIMIT_VARIABLE).is_none() {
        std::env::set_var(SPIN_LIMIT_VARIABLE, WORKER_SPIN_LIMIT.to_string());
    }
    if ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"].iter().any(|name| std::env::var_os(name).is_some()) {
        return;
    }
    if let Ok(allowed) = std::thread::available_parallelism() {
        let threads = candle_core::utils::get_num_threads().min(allowed.get());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// How many times candle's idle workers spin before they sleep (see [`fit_threads_to_allowed_cpus`]).
const WORKER_SPIN_LIMIT: u32 = 2_000;
const SPIN_LIMIT_VARIABLE: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// The device a model is loaded on (`--device`). This build computes on the CPU only; the GPU backends
/// are named so that asking for one fails with a clear message, and adding one is a change here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
    Metal,
}

impl DeviceChoice {
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda | Self::Metal => {
                bail!("device `{self:?}` is not supported yet: this build computes on the CPU only (--device cpu)")
            }
        }
    }
}

/// What a loaded model is, for `lafn inspect` and the Model pane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub parameters: usize,
    /// Storage types of the file's tensors, with counts.
    pub tensor_types: BTreeMap<String, usize>,
    pub mode: WeightMode,
    /// Bytes the weights take in memory in this mode.
    pub weight_bytes: usize,
    /// Identifies the exact weights, so cached edits are never applied to another model.
    pub fingerprint: String,
}

/// A model with its tokenizer.
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// Loads the model's weights onto `device`; everything that runs it later asks the model for it.
    pub fn load(files: &ModelFiles, mode: WeightMode, device: &Device) -> Result<Self> {
        let (mut source, config) = WeightSource::open(&files.weights, device)?;
        let tokenizer = Tokenizer::load(files.tokenizer.as_deref(), source.gguf_content())?;
        let model = Model::load(&mut source, &config, mode, None)?;
        let info = ModelInfo {
            path: files.weights.clone(),
            parameters: source.parameter_count(),
            tensor_types: source.quant_types(),
            mode,
            weight_bytes: model.weight_bytes(),
            fingerprint: fingerprint(&files.weights)?,
            config,
        };
        Ok(Self { model, tokenizer, info })
    }

    /// The same weights in another mode (e.g. dense f32 beside quantized).
    pub fn load_weights(&self, mode: WeightMode) -> Result<Model> {
        let (mut source, config) = WeightSource::open(&self.info.path, self.model.device())?;
        Model::load(&mut source, &config, mode, None)
    }

    /// The weights edits are optimized on: dense f32 layers, which gradients flow through, and this
    /// model's embedding and LM head where they are tiled (`q8_tiles`, CPUs with AVX-512 VNNI or AVX2). The
    /// head is only read by an edit (its gradient over hidden states takes rows of it), so it need not
    /// be dense: sharing it saves the dense copy (671 MB on Gemma 3), and the logits an edit is trained
    /// and stopped on are those chat computes.
    pub fn editing_weights(&self) -> Result<Model> {
        if self.model.mode() == WeightMode::Dense {
            // Already dense (`--dense`): the same tensors, not a second copy.
            return Ok(self.model.clone());
        }
        let (mut source, config) = WeightSource::open(&self.info.path, self.model.device())?;
        Model::load(&mut source, &config, WeightMode::Dense, Some(&self.model))
    }
}

/// A short hash of the file size and its first and last MiB: cheap, and distinct for distinct models.
pub fn fingerprint(path: &Path) -> Result<String> {
    const SAMPLE: u64 = 1 << 20;
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors" || e == "json"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut hasher = Sha256::new();
    for file_path in files {
        let mut file = File::open(&file_path)?;
        let len = file.metadata()?.len();
        hasher.update(len.to_le_bytes());
        let mut buf = vec![0u8; SAMPLE.min(len) as usize];
        file.read_exact(&mut buf)?;
        hasher.update(&buf);
        file.seek(SeekFrom::Start(len - buf.len() as u64))?;
        file.read_exact(&mut buf)?;
        hasher.update(&buf);
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// A human-readable summary of a model, as `lafn inspect` prints it.
pub fn describe(info: &ModelInfo) -> String {
    let c = &info.config;
    let types: Vec<String> = info.tensor_types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
    format!(
        "path:          {}\n\
         architecture:  {}\n\
         layers:        {}\n\
         hidden size:   {}\n\
         FFN neurons:   {} per layer ({} in all)\n\
         heads:         {} query, {} key/value, head dim {}\n\
         vocabulary:    {}\n\
         context:       {}{}\n\
         parameters:    {:.1} M\n\
         tensor types:  {}\n\
         weights:       {:.1} MB in memory ({:?})\n\
         fingerprint:   {}\n",
        info.path.display(),
        c.arch.name(),
        c.num_layers,
        c.hidden_size,
        c.ffn_size,
        c.ffn_size * c.num_layers,
        c.num_heads,
        c.num_kv_heads,
        c.head_dim,
        c.vocab_size,
        c.context_length,
        c.sliding_window.map(|w| format!(" (sliding window {w})")).unwrap_or_default(),
        info.parameters as f64 / 1e6,
        types.join(", "),
        info.weight_bytes as f64 / 1e6,
        info.mode,
        info.fingerprint,
    )
}

//! Model sources: resolve `--model` (built-in name, local path, Hugging Face repo id) to files on disk.
//! INTERFACE STUB: the implementation is being written.

use std::path::PathBuf;

/// The model used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "gemma-3-270m";

/// Files that make up one model on disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// A `.gguf` file, or a directory with `config.json` + `*.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`, when the weights do not carry their own tokenizer.
    pub tokenizer: Option<PathBuf>,
}

/// Progress of a fetch, for a CLI progress line or a TUI progress bar.
#[derive(Debug, Clone)]
pub enum FetchEvent {
    /// A new step began (e.g. "downloading part 2/4").
    Stage(String),
    /// Bytes done out of an estimated total over the whole fetch.
    Bytes { done: u64, total: u64 },
}

/// Resolves a model spec to files, fetching built-ins on first use.
pub fn resolve(spec: &str, on_event: &mut dyn FnMut(FetchEvent)) -> crate::Result<ModelFiles> {
    let _ = on_event;
    let path = if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        directories::ProjectDirs::from("", "", "lafn").unwrap().data_dir().join("models").join(spec).join("model.gguf")
    };
    let tokenizer = path.parent().map(|p| p.join("tokenizer.json")).filter(|p| p.exists());
    Ok(ModelFiles { weights: path, tokenizer })
}

/// STUB (being implemented): fetches a built-in model.
pub fn fetch_builtin(name: &str, force: bool, on_event: &mut dyn FnMut(FetchEvent)) -> crate::Result<ModelFiles> {
    let _ = force;
    resolve(name, on_event)
}

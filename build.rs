//! Stamps the build with the git commit it was built from (`LAFN_GIT_COMMIT`, recorded in eval
//! reports): `<sha>`, `<sha>-dirty` when the sources differ from that commit, or "unknown" outside a
//! git checkout (a crate tarball) or without git. Never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binary is built from: a change here can make the stamp dirty (and rebuilds lafn anyway).
const SOURCES: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // Only paths that exist: cargo reruns a build script every time for a missing one.
    for source in SOURCES.into_iter().filter(|source| root.join(source).exists()) {
        println!("cargo:rerun-if-changed={source}");
    }
    // Only this checkout's own git: a tarball unpacked inside another repository must not take its commit.
    let commit = if root.join(".git").exists() { stamp(&root) } else { None };
    println!("cargo:rustc-env=LAFN_GIT_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}

/// The commit, marked dirty when tracked sources have uncommitted changes (new untracked files, such as
/// fresh results, do not count). Also watches HEAD and the ref it points to so a commit or checkout
/// stamps again.
fn stamp(root: &Path) -> Option<String> {
    let sha = git(root, &["rev-parse", "HEAD"])?;
    for path in watched_git_files(root) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let changes = git(root, &[&["status", "--porcelain", "--untracked-files=no", "--"][..], &SOURCES].concat())?;
    Some(if changes.is_empty() { sha } else { format!("{sha}-dirty") })
}

/// HEAD, and the branch it points to: its loose ref file, or `packed-refs` while it has none (only
/// files that exist). Worktrees keep HEAD and refs in different directories, so git says where each is.
fn watched_git_files(root: &Path) -> Vec<PathBuf> {
    let git_path = |name: &str| git(root, &["rev-parse", "--git-path", name]).map(|path| root.join(path));
    let mut files = vec![git_path("HEAD")];
    // Detached HEAD: no branch, HEAD itself holds the commit.
    if let Some(branch) = git(root, &["symbolic-ref", "--quiet", "HEAD"]) {
        let loose = git_path(&branch);
        let packed = || git_path("packed-refs");
        files.push(if loose.as_deref().is_some_and(Path::exists) { loose } else { packed() });
    }
    files.into_iter().flatten().filter(|path| path.exists()).collect()
}

/// Runs git in `root` and returns its trimmed output, or `None` if git is missing or fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    // No optional locks: a build must not hold the index lock against the user's own git commands.
    let output = Command::new("git").arg("--no-optional-locks").args(args).current_dir(root).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

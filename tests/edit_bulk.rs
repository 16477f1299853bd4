//! `lafn edit --range` / `--all` on a tiny random model: the chosen groups are edited and cached, a rerun
//! skips them, a bad group is reported without stopping the others, bad ranges are refused, and groups
//! spread over worker processes are the edits of one; a single edit stopped by SIGTERM stores nothing
//! and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::Arch;

/// Four MzsRE-style records in words the tiny tokenizer knows; the second has no target.
const RECORDS: &str = r#"{"en": {"subject": "Shmavon Shmavonyan", "src": "what country is Shmavon Shmavonyan from ?", "rephrase": "", "alt": "Yemen", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}, "de": {"subject": "Shmavon Shmavonyan", "src": "Shmavon Shmavonyan ist der", "rephrase": "", "alt": "Jemen", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}}
{"en": {"subject": "Danielle Darrieux", "src": "which language speaks Danielle Darrieux ?", "rephrase": "", "alt": " ", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}}
{"en": {"subject": "Danielle Darrieux", "src": "which language speaks Danielle Darrieux ?", "rephrase": "", "alt": "Japan", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}, "de": {"subject": "Danielle Darrieux", "src": "Danielle Darrieux ist die", "rephrase": "", "alt": "Japan", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}}
{"en": {"subject": "Shmavon Shmavonyan", "src": "where is Shmavon Shmavonyan ?", "rephrase": "", "alt": "Italy", "loc": "", "loc_ans": "", "portability": {"New Question": "", "New Answer": ""}}}
"#;

/// Runs `lafn args...`: (exit code, stdout, stderr).
fn lafn(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lafn")).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A tiny model and RECORDS written under `dir`: the `lafn edit` arguments over them, and the cache dir.
fn edit_command(dir: &Path) -> (Vec<String>, PathBuf) {
    let files = write_tiny_model(&dir.join("model"), TinySpec::new(Arch::Llama)).unwrap();
    let data = dir.join("records.jsonl");
    std::fs::write(&data, RECORDS).unwrap();
    let cache = dir.join("cache");
    let args = ["edit", "--model", &files.weights.to_string_lossy(), "--group", &data.to_string_lossy()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--cache-dir".to_string(), cache.to_string_lossy().into_owned()]);
    (args, cache)
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("entries")).map_or(0, |dir| dir.count())
}

#[test]
fn a_range_is_edited_a_rerun_skips_it_and_a_bad_group_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (edit, cache) = edit_command(dir.path());
    let edit: Vec<&str> = edit.iter().map(String::as_str).collect();
    let edit = [&edit[..], &["--steps", "2", "--beta", "0.5", "--layers", "1"]].concat();
    let with = |flags: &[&'static str]| -> Vec<&str> { [&edit[..], flags].concat() };

    let (code, stdout, stderr) = lafn(&with(&["--range", "1..3", "--jobs", "2"]));
    assert_ne!(code, 0, "a failed group makes the exit code non-zero: {stdout}");
    assert!(stdout.contains("group 1 `Shmavon Shmavonyan`: cached as"), "{stdout}\n{stderr}");
    assert!(stdout.contains("group 2: FAILED") && stdout.contains("the target is empty"), "{stdout}");
    assert!(stdout.contains("group 3 `Danielle Darrieux`: cached as"), "the bad group stopped nothing: {stdout}");
    assert!(!stdout.contains("group 4"), "{stdout}");
    assert!(stdout.contains("edited 2, skipped 0 (already cached), failed 1, of 3 groups"), "{stdout}");
    assert!(stderr.contains("1 of 3 groups failed"), "{stderr}");
    assert_eq!(entries(&cache), 2);

    // Rerun: the cached groups are skipped, the bad one fails again.
    let (code, stdout, _) = lafn(&with(&["--range", "1..3", "--jobs", "1"]));
    assert_ne!(code, 0);
    assert!(stdout.contains("group 1 `Shmavon Shmavonyan`: skipped, already cached as"), "{stdout}");
    assert!(stdout.contains("edited 0, skipped 2 (already cached), failed 1, of 3 groups"), "{stdout}");

    // Other settings make other edits: nothing is skipped.
    let (_, stdout, _) = lafn(&with(&["--range", "3..3", "--lr", "0.02"]));
    assert!(stdout.contains("edited 1, skipped 0"), "{stdout}");
    assert_eq!(entries(&cache), 2, "the edit of group 3 was replaced");

    // The last group alone: exit code 0.
    let (code, stdout, stderr) = lafn(&with(&["--range", "4.."]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("edited 1, skipped 0 (already cached), failed 0, of 1 groups"), "{stdout}");
    assert_eq!(entries(&cache), 3);
}

/// Every file of a cache's entries, by path under the cache, with its bytes.
fn entry_files(cache: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(cache.join("entries")).unwrap() {
        for file in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                files.push((path.strip_prefix(cache).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// `--jobs 2`: two worker processes edit the groups and store them in the cache themselves; the
/// cache lists them all and holds the update values one process makes.
#[test]
fn groups_edited_by_workers_are_the_edits_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (edit, cache) = edit_command(dir.path());
    let edit: Vec<&str> = edit.iter().map(String::as_str).collect();
    let other_cache = dir.path().join("other-cache").to_string_lossy().into_owned();
    let flags = ["--steps", "2", "--beta", "0.5", "--layers", "1", "--range", "3..4"];
    let (code, stdout, stderr) = lafn(&[&edit[..], &flags, &["--jobs", "2"]].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("edited 2, skipped 0 (already cached), failed 0, of 2 groups"), "{stdout}");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["entries"].as_array().map(Vec::len), Some(2), "the index lists both workers' entries: {index}");
    let mut one_process: Vec<&str> = edit.clone();
    let at = one_process.iter().position(|a| *a == "--cache-dir").unwrap();
    one_process[at + 1] = &other_cache;
    let (code, _, stderr) = lafn(&[&one_process[..], &flags, &["--jobs", "1"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let (spread, alone) = (entry_files(&cache), entry_files(Path::new(&other_cache)));
    assert_eq!(spread.len(), 2 * 2, "update values and scope keys of both groups");
    assert!(spread == alone, "the same files, byte for byte");
}

#[test]
fn bad_ranges_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (edit, cache) = edit_command(dir.path());
    let edit: Vec<&str> = edit.iter().map(String::as_str).collect();
    for (flags, expected) in [
        (&["--range", "2..9"][..], "holds 4 groups; --range 2..9 goes past the last"),
        (&["--range", "5.."], "holds 4 groups"),
        (&["--range", "3..2"], "reversed"),
        (&["--range", "0..2"], "count from 1"),
        (&["--range", ""], "empty"),
        (&["--all", "--index", "2"], "cannot be used with"),
        (&["--all", "--range", "1..2"], "cannot be used with"),
    ] {
        let (code, _, stderr) = lafn(&[&edit[..], flags].concat());
        assert_ne!(code, 0, "{flags:?}");
        assert!(stderr.contains(expected) && !stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
    assert!(!cache.exists(), "nothing cached");
}

/// SIGTERM during a single edit's optimization: it stops at the next step, says so, exits with an error
/// and stores nothing (no cache is even created).
#[test]
fn a_terminated_edit_stores_nothing_and_says_so() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let (mut args, cache) = edit_command(dir.path());
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"edit": {"early_stop": false}}"#).unwrap();
    args.extend(["--steps", "1000000", "--settings"].map(String::from));
    args.push(settings.to_string_lossy().into_owned());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(&args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Optimization has started once a step line (its number first) is printed.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.trim_start().starts_with("1 ") {
        line.clear();
    }
    assert!(line.trim_start().starts_with("1 "), "no optimization step was printed");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SIGTERM") && stderr.contains("the edit was not stored"), "{stderr}");
    assert!(!cache.exists(), "a terminated edit created the cache");
}

//! Bad input to the `lafn` binary gives a clear error and a non-zero exit code, never a panic.

use std::path::Path;
use std::process::Command;

use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::Arch;

/// Runs `lafn args...` and returns (exit code, stderr).
fn lafn(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_clear_failure(args: &[&str], expected: &str) {
    let (code, stderr) = lafn(args);
    assert_ne!(code, 0, "`lafn {args:?}` should fail");
    assert!(!stderr.contains("panicked"), "`lafn {args:?}` panicked: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&expected.to_lowercase()),
        "`lafn {args:?}`: expected {expected:?} in: {stderr}"
    );
}

fn tiny_gguf(dir: &Path) -> String {
    let files = write_tiny_model(dir, TinySpec::new(Arch::Llama)).unwrap();
    files.weights.to_string_lossy().into_owned()
}

#[test]
fn truncated_gguf_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert_clear_failure(&["inspect", "--model", &path], "truncated");
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert_clear_failure(&["inspect", "--model", &path], "not a readable GGUF");
}

#[test]
fn wrong_magic_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4].copy_from_slice(b"NOPE");
    std::fs::write(&path, &bytes).unwrap();
    assert_clear_failure(&["inspect", "--model", &path], "not a readable GGUF");
}

#[test]
fn missing_tokenizer_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert_clear_failure(&["generate", "--model", &path, "--prompt", "the city"], "no tokenizer");
}

#[test]
fn unknown_architecture_is_reported() {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mamba.gguf");
    let arch = gguf_file::Value::String("mamba".into());
    let weight = QTensor::quantize(
        &candle_core::Tensor::zeros((4, 32), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut file, &[("general.architecture", &arch)], &[("token_embd.weight", &weight)]).unwrap();
    assert_clear_failure(&["inspect", "--model", path.to_str().unwrap()], "unsupported model architecture `mamba`");
}

#[test]
fn empty_prompt_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    assert_clear_failure(&["generate", "--model", &path, "--prompt", "   "], "prompt is empty");
}

#[test]
fn tiny_model_generates() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(["generate", "--model", &path, "--prompt", "the capital of France is", "--max-tokens", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("the capital of France is"));
}

/// A one-language edit group in our format, written to `dir`.
fn group_file(dir: &Path) -> String {
    let path = dir.join("group.json");
    std::fs::write(
        &path,
        r#"{"name": "tiny", "descriptors": [{"lang": "en", "subject": "Shmavon Shmavonyan",
            "prompt": "what country is Shmavon Shmavonyan from ?", "target": "Yemen", "paraphrases": [], "aliases": []}]}"#,
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn bad_numeric_settings_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    let edit = ["edit", "--model", &model, "--group", &group, "--cache-dir", &cache_arg];
    for (flags, expected) in [
        (&["--lr", "NaN"][..], "edit.learning_rate"),
        (&["--lr", "-1"], "edit.learning_rate"),
        (&["--lr", "inf"], "edit.learning_rate"),
        (&["--kl-weight", "-0.5"], "edit.kl_weight"),
        (&["--beta", "0"], "locate.beta"),
        (&["--beta", "1.5"], "locate.beta"),
        (&["--steps", "0"], "edit.steps"),
    ] {
        let args: Vec<&str> = edit.iter().chain(flags).copied().collect();
        assert_clear_failure(&args, expected);
        assert!(!cache.exists(), "{flags:?}: nothing cached");
    }
    // A negative count reaches clap's number parser, which names the flag (not "unexpected argument").
    assert_clear_failure(&[&edit[..], &["--steps", "-3"]].concat(), "invalid value '-3' for '--steps");
    assert_clear_failure(&["locate", "--model", &model, "--group", &group, "--beta", "-0.2"], "locate.beta");
}

#[test]
fn unknown_settings_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"edit": {"step": 3}}"#).unwrap();
    let settings = settings.to_string_lossy().into_owned();
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let args = ["edit", "--model", &model, "--group", &group, "--cache-dir", &cache, "--settings", &settings];
    assert_clear_failure(&args, "unknown setting `edit.step`; valid here: ");
}

#[test]
fn bench_decode_token_counts_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_gguf(dir.path());
    for count in ["0", "1", "18446744073709551615"] {
        assert_clear_failure(&["bench", "--model", &model, "--decode-tokens", count], "--decode-tokens must be from 2");
    }
}

#[test]
fn numeric_flags_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let data = dir.path().join("data.jsonl").to_string_lossy().into_owned();
    let (model, group) = (model.as_str(), group.as_str());
    let commands: [(&[&str], &[&str]); 6] = [
        (
            &["generate", "--model", model, "--prompt", "the city"],
            &["--max-tokens", "--temperature", "--top-p", "--seed"],
        ),
        (&["locate", "--model", model, "--group", group], &["--index", "--beta", "--layers"]),
        (&["edit", "--model", model, "--group", group, "--cache-dir", &cache], &["--steps", "--lr", "--kl-weight"]),
        (&["chat", "--model", model, "--cache-dir", &cache], &["--max-tokens"]),
        (&["bench", "--model", model], &["--decode-tokens"]),
        (&["eval", "--model", model, "--dataset", "mzsre", "--file", &data], &["--limit"]),
    ];
    // Values that end quickly on a tiny model (a huge token or step count would only take long).
    let values = ["0", "-1", "-0", "NaN", "inf", "-inf", "1e309", "abc", "", "٣", "18446744073709551616"];
    for (command, flags) in commands {
        for flag in flags {
            for value in values {
                let args: Vec<&str> = command.iter().copied().chain([*flag, value]).collect();
                let (code, stderr) = lafn(&args);
                assert!(code != 101 && !stderr.contains("panicked"), "`lafn {args:?}` panicked: {stderr}");
            }
        }
    }
}

/// Runs `lafn args...` with `input` on stdin; it must succeed: (stdout, stderr).
fn lafn_with_input(args: &[&str], input: &str) -> (String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

/// A damaged cache entry is marked by `cache list` and skipped by chat, which warns once and answers
/// every line; `--cache-dir` works after the action too.
#[test]
fn a_damaged_cache_entry_is_listed_and_skipped_by_chat() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    let edit = ["edit", "--model", &model, "--group", &group, "--cache-dir", &cache_arg, "--steps", "2"];
    let edit = [&edit[..], &["--beta", "0.5", "--layers", "1"]].concat();
    let (code, stderr) = lafn(&edit);
    assert_eq!(code, 0, "{stderr}");
    let list = |args: &[&str]| lafn_with_input(args, "").0;
    let listed = list(&["cache", "list", "--model", &model, "--cache-dir", &cache_arg]);
    assert!(listed.contains("tiny-") && !listed.contains("DAMAGED"), "{listed}");
    let entry = std::fs::read_dir(cache.join("entries")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(entry.join("update.safetensors"), b"garbage").unwrap();
    assert!(list(&["cache", "--model", &model, "--cache-dir", &cache_arg, "list"]).contains("DAMAGED"));

    let chat = ["chat", "--model", &model, "--cache-dir", &cache_arg, "--max-tokens", "2"];
    let (stdout, stderr) = lafn_with_input(&chat, &"what country is Shmavon Shmavonyan from ?\n".repeat(2));
    assert_eq!(stdout.matches("[fired: none]").count(), 2, "both lines answered, unedited: {stdout}");
    assert_eq!(stderr.matches("skipped damaged cache entry").count(), 1, "one warning: {stderr}");
}

/// `cache list` finds a truncated update file from its header; values that are not finite (a flipped
/// bit) need `--verify`, and chat skips such an entry rather than answering with NaN.
#[test]
fn a_truncated_or_poisoned_update_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    let edit = ["edit", "--model", &model, "--group", &group, "--cache-dir", &cache_arg, "--steps", "2"];
    let (code, stderr) = lafn(&[&edit[..], &["--beta", "0.5", "--layers", "1"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let list = |verify: bool| {
        let args = ["cache", "list", "--model", &model, "--cache-dir", &cache_arg, "--verify"];
        lafn_with_input(&args[..args.len() - usize::from(!verify)], "").0
    };
    let entry = std::fs::read_dir(cache.join("entries")).unwrap().next().unwrap().unwrap().path();
    let update = entry.join("update.safetensors");
    let good = std::fs::read(&update).unwrap();

    std::fs::write(&update, &good[..good.len() - 4]).unwrap();
    assert!(list(false).contains("DAMAGED"), "a truncated file is found from its header");

    // A NaN written over the first value of a delta: the header still holds.
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&good[8..8 + header_len]).unwrap();
    let (_, delta) = header.as_object().unwrap().iter().find(|(name, _)| name.ends_with(".delta")).unwrap();
    let start = 8 + header_len + delta["data_offsets"][0].as_u64().unwrap() as usize;
    let mut poisoned = good.clone();
    poisoned[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&update, &poisoned).unwrap();
    assert!(!list(false).contains("DAMAGED"), "headers alone cannot see values");
    let verified = list(true);
    assert!(verified.contains("DAMAGED") && verified.contains("NaN"), "{verified}");
    let chat = ["chat", "--model", &model, "--cache-dir", &cache_arg, "--max-tokens", "2"];
    let (stdout, stderr) = lafn_with_input(&chat, "what country is Shmavon Shmavonyan from ?\n");
    assert!(stdout.contains("[fired: none]") && stderr.contains("skipped damaged cache entry"), "{stdout}{stderr}");
}

/// An unwritable cache is refused before the edit is computed: nothing is located or optimized.
#[test]
fn an_unwritable_cache_is_found_before_editing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    // /proc refuses new files whoever asks (file permissions would not stop root).
    let args = ["edit", "--model", &model, "--group", &group, "--cache-dir", "/proc/lafn-cache"];
    let out = Command::new(env!("CARGO_BIN_EXE_lafn")).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(stderr.contains("/proc/lafn-cache") && !stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("located"), "the edit ran before the cache was checked: {stdout}");
}

/// Inputs that were silently accepted: each is now refused by name, and nothing is created.
#[test]
fn silently_accepted_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, group) = (tiny_gguf(dir.path()), group_file(dir.path()));
    let locate = ["locate", "--model", &model, "--group", &group];
    assert_clear_failure(&[&locate[..], &["--index", "0"]].concat(), "--index 0 is out of range");
    assert_clear_failure(&[&locate[..], &["--langs", "en,ar"]].concat(), "no language `ar`");
    let missing = dir.path().join("no-such-cache");
    let missing_arg = missing.to_string_lossy().into_owned();
    assert_clear_failure(&["cache", "list", "--model", &model, "--cache-dir", &missing_arg], "no edit cache");
    assert!(!missing.exists(), "a mistyped cache directory is not created");
    let out = dir.path().join("report.json").to_string_lossy().into_owned();
    let eval = ["eval", "--model", &model, "--dataset", "mzsre", "--file", &group, "--limit", "0", "--out", &out];
    assert_clear_failure(&eval, "--limit 0");
    // Errors written to a pipe carry no colour codes.
    let (_, stderr) = lafn(&[&locate[..], &["--index", "0"]].concat());
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

/// `lafn locate` and `lafn edit` locate one way (issue 11 item 10): the same layers and neurons for the
/// same group. They differed when locate ran on the quantized weights and edit on the dense ones.
#[test]
fn locate_and_edit_find_the_same_neurons() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_gguf(dir.path());
    let group = dir.path().join("group.json");
    std::fs::write(
        &group,
        r#"{"name": "tiny", "descriptors": [
            {"lang": "en", "subject": "Shmavon Shmavonyan", "prompt": "what country is Shmavon Shmavonyan from ?", "target": "Yemen"},
            {"lang": "de", "subject": "Shmavon Shmavonyan", "prompt": "Shmavon Shmavonyan ist der Jemen", "target": "Jemen"}]}"#,
    )
    .unwrap();
    let group = group.to_string_lossy().into_owned();
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let stdout = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lafn")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let located = stdout(&["locate", "--model", &model, "--group", &group, "--beta", "0.5"]);
    // "layer 2: 47 neurons [...]" per selected layer.
    let (mut layers, mut neurons) = (Vec::new(), 0);
    for line in located.lines().filter_map(|l| l.strip_prefix("layer ")).filter(|l| l.contains(" neurons ")) {
        let (layer, rest) = line.split_once(": ").unwrap();
        layers.push(layer.to_string());
        neurons += rest.split_whitespace().next().unwrap().parse::<usize>().unwrap();
    }
    let edited =
        stdout(&["edit", "--model", &model, "--group", &group, "--beta", "0.5", "--steps", "1", "--cache-dir", &cache]);
    let expected = format!("located {neurons} neurons in layers [{}]", layers.join(", "));
    assert!(edited.contains(&expected), "locate printed\n{located}\nedit printed\n{edited}");
}

/// With RUST_BACKTRACE=1 (meant for panics), candle's errors carry no backtrace frames into the
/// message the user reads: here a GGUF with a wrong magic, which candle reports.
#[test]
fn library_errors_carry_no_backtrace_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_gguf(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4].copy_from_slice(b"NOPE");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(["inspect", "--model", &path])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown magic"), "{stderr}");
    assert!(!stderr.contains("candle-core") && !stderr.contains("error.rs"), "backtrace frames: {stderr}");
}

#[test]
fn damaged_kept_answers_are_reported_on_stderr_and_cost_only_those_answers() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_gguf(&dir.path().join("model"));
    let data = dir.path().join("data");
    let sample = env!("CARGO_MANIFEST_DIR").to_string() + "/tests/fixtures/mzsre.sample.jsonl";
    let eval = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lafn"))
            .args(["eval", "--model", &model, "--dataset", "mzsre", "--file", &sample, "--langs", "en"])
            .args(["--limit", "1", "--method", "unedited", "--scoring", "generate"])
            .env("LAFN_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = eval();
    assert!(!first.contains("warning:"), "{first}");
    let kept = std::fs::read_dir(data.join("unedited-answers")).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(&kept).unwrap();
    let damaged: Vec<&str> = text.lines().enumerate().map(|(i, l)| if i == 2 { "{not json" } else { l }).collect();
    std::fs::write(&kept, damaged.join("\n") + "\n").unwrap();
    let stderr = eval();
    assert!(stderr.contains("warning: ") && stderr.contains("1 damaged lines skipped"), "{stderr}");
}

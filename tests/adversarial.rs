//! Every subcommand of the `lafn` binary over a table of bad inputs — empty, huge, NaN, negative, zero,
//! unicode, wrong types, damaged files — on a tiny random model. Each case must fail with a non-zero
//! exit code and a message naming the problem, never panic (exit code 101), and leave the data, cache
//! and sessions directories exactly as they were; the few valid cases may change them.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::Arch;

/// The files a run may touch, with a sandbox for the rest (the data dir is never the user's).
struct Sandbox {
    _root: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    cache: PathBuf,
    sessions: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().to_path_buf();
        let sandbox = Self {
            data: path.join("data"),
            cache: path.join("cache"),
            sessions: path.join("sessions"),
            root: path,
            _root: root,
        };
        for dir in [&sandbox.data, &sandbox.sessions] {
            std::fs::create_dir_all(dir).unwrap();
        }
        write_tiny_model(&sandbox.root.join("model"), TinySpec::new(Arch::Llama)).unwrap();
        sandbox
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }

    /// Writes `contents` to `name` in the sandbox and returns its path.
    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        std::fs::write(self.root.join(name), contents).unwrap();
        self.path(name)
    }

    /// Every file of the sandbox with its contents: the data, cache and sessions directories, and the
    /// inputs beside them (a state file, another model's cache), which a failing command must not touch.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.map(Result::unwrap) {
                let path = entry.path();
                if path.is_dir() {
                    into.insert(path.clone(), Vec::new());
                    walk(&path, into);
                } else {
                    into.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&self.root, &mut files);
        files
    }

    /// Runs `lafn args` (with `stdin`) and returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lafn"))
            .args(args)
            .current_dir(&self.root)
            .env("LAFN_DATA_DIR", &self.data)
            .env("LAFN_SESSIONS_DIR", &self.sessions)
            .env("HF_HUB_OFFLINE", "1")
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }
}

/// What a case must do.
enum Expect {
    /// Fail, naming the problem: stderr contains this (case-insensitive).
    Fails(&'static str),
    /// Succeed (a valid input among the bad ones); files may change.
    Succeeds,
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: String,
    expect: Expect,
}

fn case(name: &'static str, args: &[&str], expect: Expect) -> Case {
    Case { name, args: args.iter().map(|a| a.to_string()).collect(), stdin: String::new(), expect }
}

fn group_json(descriptors: &str) -> String {
    format!(r#"{{"name": "g", "descriptors": [{descriptors}]}}"#)
}

fn descriptor(lang: &str, prompt: &str, target: &str) -> String {
    serde_json::json!({"lang": lang, "subject": "Shmavon Shmavonyan", "prompt": prompt, "target": target}).to_string()
}

const PROMPT: &str = "what country is Shmavon Shmavonyan from ?";

#[test]
fn every_subcommand_refuses_bad_input_without_panicking_or_touching_files() {
    let s = Sandbox::new();
    let model = s.path("model/model.gguf");
    let cache = s.cache.to_string_lossy().into_owned();
    let sessions = s.sessions.to_string_lossy().into_owned();
    // The tiny model reads 256 tokens: inputs may take at most 128.
    let long_text = "the city ".repeat(100);

    let group = s.file("group.json", group_json(&descriptor("en", PROMPT, "Yemen")));
    let two_langs = s.file(
        "two.json",
        group_json(&[descriptor("en", PROMPT, "Yemen"), descriptor("de", PROMPT, "Jemen")].join(",")),
    );
    let long_prompt =
        s.file("long_prompt.json", group_json(&descriptor("en", &format!("{PROMPT} {long_text}"), "Yemen")));
    let long_target = s.file("long_target.json", group_json(&descriptor("en", PROMPT, &long_text)));
    let long_paraphrase = s.file(
        "long_paraphrase.json",
        group_json(
            &serde_json::json!({"lang": "en", "subject": "Shmavon Shmavonyan", "prompt": PROMPT, "target": "Yemen",
                "paraphrases": [format!("Shmavon Shmavonyan {long_text}")]})
            .to_string(),
        ),
    );
    let huge_field = s.file("huge.json", group_json(&descriptor("en", &"x".repeat(70_000), "Yemen")));
    let two_targets = s.file(
        "two_targets.json",
        group_json(&[descriptor("en", PROMPT, "Yemen"), descriptor("en", PROMPT, "Italy")].join(",")),
    );
    let empty_target_de = s.file(
        "empty_de.json",
        group_json(&[descriptor("en", PROMPT, "Yemen"), descriptor("de", PROMPT, " ")].join(",")),
    );
    let unicode = s.file("unicode.json", group_json(&descriptor("日本", "是 哪 国 人 的 也门 ?", "也门")));
    let empty_file = s.file("empty.json", "");
    let not_json = s.file("not_json.json", "{\"name\": \"g\", \"descriptors\": [");
    let wrong_key = s.file("wrong_key.json", r#"{"edits": [{"lang": "en", "prompt": "p", "target": "t"}]}"#);
    let binary = s.file("binary.json", [0u8, 159, 146, 150, 255, 0, 1]);
    let wrong_types = s.file(
        "wrong_types.json",
        r#"{"name": "g", "descriptors": [{"lang": "en", "subject": 5, "prompt": [], "target": null}]}"#,
    );
    let descriptors_number = s.file("descriptors_number.json", r#"{"name": "g", "descriptors": 5}"#);
    let no_descriptors = s.file("no_descriptors.json", r#"{"name": "g", "descriptors": []}"#);
    let settings_unknown = s.file("settings_unknown.json", r#"{"locate": {"betta": 0.5}}"#);
    let settings_type = s.file("settings_type.json", r#"{"edit": {"steps": "many"}}"#);
    let settings_array = s.file("settings_array.json", "[1, 2, 3]");
    let settings_nan = s.file("settings_nan.json", r#"{"edit": {"learning_rate": NaN}}"#);
    let settings_silent = s.file("settings_silent.json", r#"{"locate": {"activation_threshold": 1000000}}"#);
    let settings_count = s.file("settings_count.json", r#"{"paraphrases": {"count": 1000000}}"#);

    let mut truncated = std::fs::read(s.root.join("model/model.gguf")).unwrap();
    truncated.truncate(truncated.len() / 2);
    let truncated_model = s.file("truncated.gguf", &truncated);
    let empty_model = s.file("empty.gguf", "");
    std::fs::create_dir(s.root.join("bad_tokenizer")).unwrap();
    std::fs::copy(s.root.join("model/model.gguf"), s.root.join("bad_tokenizer/model.gguf")).unwrap();
    std::fs::write(s.root.join("bad_tokenizer/tokenizer.json"), "{\"model\": 3}").unwrap();
    let bad_tokenizer = s.path("bad_tokenizer/model.gguf");

    let entry = |alt: &str| {
        serde_json::json!({"subject": "Shmavon Shmavonyan", "src": PROMPT, "rephrase": PROMPT,
            "alt": alt, "loc": "who is Alice ?", "loc_ans": "Bob",
            "portability": {"New Question": "", "New Answer": ""}})
    };
    let record = |alt: &str| serde_json::json!({"en": entry(alt), "de": entry(alt)}).to_string();
    let data = s.file("data.jsonl", record("Yemen") + "\n");
    let data_long = s.file("data_long.jsonl", record(&long_text) + "\n");
    let data_damaged = s.file("data_damaged.jsonl", format!("{}\n{{\"en\": ", record("Yemen")));
    let data_wrong = s.file("data_wrong.jsonl", "{\"en\": {\"subject\": 1}}\n");
    // A benchmark record with two `en` blocks (serde_json alone keeps the last one silently).
    let record_twice = format!("{{\"en\": {}, {}", entry("Italy"), &record("Yemen")[1..]);
    let record_twice_group = s.file("record_twice.json", &record_twice);
    let data_twice = s.file("data_twice.jsonl", record_twice + "\n");
    let damaged_state_report = s.path("damaged.json");
    s.file("damaged.state.jsonl", "garbage");
    std::fs::create_dir(s.root.join("other_cache")).unwrap();
    let other_cache = s.path("other_cache");
    s.file("other_cache/index.json", r#"{"version": 1, "model_fingerprint": "0123456789abcdef", "entries": []}"#);

    let m = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--model".to_string(), model.clone()]);
        all
    };
    let with = |base: Vec<String>, extra: &[&str]| -> Vec<String> {
        base.into_iter().chain(extra.iter().map(|a| a.to_string())).collect()
    };
    let locate = |g: &str| m(&["locate", "--group", g]);
    let edit = |g: &str| m(&["edit", "--group", g, "--cache-dir", &cache]);
    let eval =
        |file: &str| m(&["eval", "--dataset", "mzsre", "--file", file, "--langs", "en,de", "--method", "unedited"]);
    let cases_of = |name, args: Vec<String>, expect| Case { name, args, stdin: String::new(), expect };
    use Expect::{Fails, Succeeds};

    let cases = vec![
        // The TUI: a bad session name is refused before the terminal is touched.
        case(
            "tui: session with a path",
            &["--session", "../escape", "--sessions-dir", &sessions],
            Fails("session name"),
        ),
        case("tui: empty session", &["--session", "", "--sessions-dir", &sessions], Fails("is empty")),
        case("tui: unknown flag", &["--frobnicate"], Fails("unexpected argument")),
        // fetch-model
        case("fetch-model: unknown name", &["fetch-model", "no-such-model"], Fails("no-such-model")),
        case("fetch-model: empty name", &["fetch-model", ""], Fails("no built-in model ``")),
        // inspect and damaged models
        case("inspect: empty model path", &["inspect", "--model", ""], Fails("no model ``")),
        case("inspect: empty file", &["inspect", "--model", &empty_model], Fails("gguf")),
        case("inspect: truncated model", &["inspect", "--model", &truncated_model], Fails("truncated")),
        case("inspect: missing file", &["inspect", "--model", &s.path("nope.gguf")], Fails("nope.gguf")),
        case("inspect: unicode model name", &["inspect", "--model", "モデル/∅"], Fails("モデル")),
        case(
            "generate: damaged tokenizer",
            &["generate", "--model", &bad_tokenizer, "--prompt", "the"],
            Fails("tokenizer"),
        ),
        // generate
        cases_of("generate: empty prompt", m(&["generate", "--prompt", ""]), Fails("prompt is empty")),
        cases_of(
            "generate: prompt over the model's input bound",
            m(&["generate", "--prompt", &long_text]),
            Fails("the prompt is 200 tokens long; this model takes at most 128"),
        ),
        cases_of(
            "generate: NaN top-p",
            m(&["generate", "--prompt", "the", "--temperature", "1", "--top-p", "NaN"]),
            Fails("top-p"),
        ),
        cases_of(
            "generate: negative temperature",
            m(&["generate", "--prompt", "the", "--temperature", "-1"]),
            Fails("temperature"),
        ),
        cases_of(
            "generate: NaN temperature",
            m(&["generate", "--prompt", "the", "--temperature", "NaN"]),
            Fails("temperature"),
        ),
        cases_of(
            "generate: word for a number",
            m(&["generate", "--prompt", "the", "--max-tokens", "many"]),
            Fails("invalid value 'many'"),
        ),
        cases_of("generate: zero tokens", m(&["generate", "--prompt", "the", "--max-tokens", "0"]), Succeeds),
        cases_of(
            "generate: unicode prompt",
            m(&["generate", "--prompt", "是 哪 国 🦀", "--max-tokens", "2"]),
            Succeeds,
        ),
        // locate: group files
        cases_of("locate: empty group file", locate(&empty_file), Fails("holds no edit groups")),
        cases_of("locate: cut-off JSON", locate(&not_json), Fails("not valid JSON")),
        cases_of("locate: neither format", locate(&wrong_key), Fails("`edits` is not a language's entry")),
        cases_of("locate: binary group file", locate(&binary), Fails("did not contain valid UTF-8")),
        cases_of("locate: missing group file", locate(&s.path("nope.json")), Fails("cannot read")),
        cases_of("locate: wrong field types", locate(&wrong_types), Fails("invalid type")),
        cases_of("locate: descriptors a number", locate(&descriptors_number), Fails("invalid type")),
        cases_of("locate: no languages", locate(&no_descriptors), Fails("has no languages")),
        cases_of(
            "locate: prompt over the bound",
            locate(&long_prompt),
            Fails("language en: the prompt is 207 tokens long; this model takes at most 128"),
        ),
        cases_of(
            "locate: target over the bound",
            locate(&long_target),
            Fails("language en: the target is 200 tokens long"),
        ),
        cases_of(
            "locate: paraphrase over the bound",
            locate(&long_paraphrase),
            Fails("language en: the paraphrase 1 is 202 tokens long"),
        ),
        cases_of("locate: field over 65,536 characters", locate(&huge_field), Fails("the prompt has 70000 characters")),
        cases_of(
            "locate: one language, two targets",
            locate(&two_targets),
            Fails("two blocks of language en with different targets"),
        ),
        cases_of(
            "locate: a record with two `en` blocks",
            locate(&record_twice_group),
            Fails("the key `en` appears twice"),
        ),
        cases_of("locate: --index 0", with(locate(&group), &["--index", "0"]), Fails("--index 0 is out of range")),
        cases_of("locate: --index huge", with(locate(&group), &["--index", "99999999999"]), Fails("out of range")),
        cases_of("locate: --index -1", with(locate(&group), &["--index", "-1"]), Fails("invalid value '-1'")),
        cases_of("locate: --langs absent", with(locate(&group), &["--langs", "en,日本"]), Fails("no language `日本`")),
        cases_of("locate: --langs empty", with(locate(&group), &["--langs", ""]), Fails("no language ``")),
        cases_of("locate: --beta NaN", with(locate(&group), &["--beta", "NaN"]), Fails("locate.beta")),
        cases_of("locate: --beta 0", with(locate(&group), &["--beta", "0"]), Fails("locate.beta")),
        cases_of(
            "locate: --layers beyond the model",
            with(locate(&group), &["--layers", "7"]),
            Fails("layer 7 does not exist"),
        ),
        cases_of("locate: --layers negative", with(locate(&group), &["--layers", "-1"]), Fails("invalid value '-1'")),
        cases_of(
            "locate: unknown settings key",
            with(locate(&group), &["--settings", &settings_unknown]),
            Fails("unknown setting `locate.betta`"),
        ),
        cases_of(
            "locate: settings of the wrong type",
            with(locate(&group), &["--settings", &settings_type]),
            Fails("invalid type"),
        ),
        cases_of(
            "locate: settings an array",
            with(locate(&group), &["--settings", &settings_array]),
            Fails("invalid type"),
        ),
        cases_of(
            "locate: settings with NaN",
            with(locate(&group), &["--settings", &settings_nan]),
            Fails("settings_nan.json are not valid"),
        ),
        cases_of(
            "locate: a million paraphrases",
            with(locate(&group), &["--settings", &settings_count]),
            Fails("paraphrases.count"),
        ),
        cases_of(
            "locate: settings file missing",
            with(locate(&group), &["--settings", &s.path("nope.json")]),
            Fails("nope.json"),
        ),
        cases_of(
            "locate: damaged model",
            vec!["locate".into(), "--group".into(), group.clone(), "--model".into(), truncated_model.clone()],
            Fails("truncated"),
        ),
        cases_of("locate: unicode group", locate(&unicode), Succeeds),
        cases_of(
            "locate: empty target in a language left out",
            with(locate(&empty_target_de), &["--langs", "en"]),
            Succeeds,
        ),
        cases_of(
            "locate: empty target in a language kept",
            locate(&empty_target_de),
            Fails("language de: the target is empty"),
        ),
        // edit: nothing reaches the cache unless the edit succeeds
        cases_of("edit: --lr NaN", with(edit(&group), &["--lr", "NaN"]), Fails("edit.learning_rate")),
        cases_of("edit: --lr -1", with(edit(&group), &["--lr", "-1"]), Fails("edit.learning_rate")),
        cases_of("edit: --lr inf", with(edit(&group), &["--lr", "inf"]), Fails("edit.learning_rate")),
        cases_of("edit: --steps 0", with(edit(&group), &["--steps", "0"]), Fails("edit.steps")),
        cases_of("edit: --steps -3", with(edit(&group), &["--steps", "-3"]), Fails("invalid value '-3'")),
        cases_of("edit: --kl-weight -1", with(edit(&group), &["--kl-weight", "-1"]), Fails("edit.kl_weight")),
        cases_of("edit: prompt over the bound", edit(&long_prompt), Fails("the prompt is 207 tokens long")),
        cases_of("edit: target over the bound", edit(&long_target), Fails("the target is 200 tokens long")),
        cases_of("edit: one language, two targets", edit(&two_targets), Fails("different targets")),
        cases_of("edit: empty group file", edit(&empty_file), Fails("holds no edit groups")),
        cases_of(
            "edit: no neurons fire, into a new cache",
            m(&["edit", "--group", &group, "--cache-dir", &s.path("new_cache"), "--settings", &settings_silent]),
            Fails("no language-agnostic neurons were located"),
        ),
        cases_of(
            "edit: unwritable cache",
            m(&["edit", "--group", &group, "--cache-dir", "/proc/lafn-cache"]),
            Fails("/proc/lafn-cache"),
        ),
        cases_of(
            "edit: two languages",
            with(edit(&two_langs), &["--steps", "2", "--beta", "0.5", "--layers", "1"]),
            Succeeds,
        ),
        // chat
        Case {
            stdin: format!("{long_text}\nwhat country is Shmavon Shmavonyan from ?\n"),
            ..cases_of(
                "chat: a line over the bound, then a good one",
                m(&["chat", "--cache-dir", &cache, "--max-tokens", "2"]),
                Succeeds,
            )
        },
        Case {
            stdin: "\u{0}\u{1b}[2J\n\n   \n🦀🦀🦀\n".into(),
            ..cases_of(
                "chat: control characters and emoji",
                m(&["chat", "--cache-dir", &cache, "--max-tokens", "2"]),
                Succeeds,
            )
        },
        cases_of(
            "chat: --max-tokens -1",
            m(&["chat", "--cache-dir", &cache, "--max-tokens", "-1"]),
            Fails("invalid value '-1'"),
        ),
        cases_of(
            "chat: settings of the wrong type",
            m(&["chat", "--cache-dir", &cache, "--settings", &settings_type]),
            Fails("invalid type"),
        ),
        // cache
        cases_of("cache show: unknown id", m(&["cache", "show", "nope", "--cache-dir", &cache]), Fails("nope")),
        cases_of("cache show: empty id", m(&["cache", "show", "", "--cache-dir", &cache]), Fails("has no entry ``")),
        cases_of(
            "cache rm: a path for an id",
            m(&["cache", "rm", "../../data", "--cache-dir", &cache]),
            Fails("../../data"),
        ),
        cases_of("cache rm: unicode id", m(&["cache", "rm", "ü🦀", "--cache-dir", &cache]), Fails("ü🦀")),
        cases_of(
            "cache list: mistyped dir",
            m(&["cache", "list", "--cache-dir", &s.path("cahce")]),
            Fails("no edit cache"),
        ),
        cases_of("cache: no action", m(&["cache", "--cache-dir", &cache]), Fails("Usage")),
        // eval
        cases_of("eval: --limit 0", with(eval(&data), &["--limit", "0"]), Fails("--limit 0")),
        cases_of("eval: --jobs 0", with(eval(&data), &["--jobs", "0"]), Fails("--jobs")),
        cases_of(
            "eval: unknown method",
            m(&["eval", "--dataset", "mzsre", "--file", &data, "--method", "magic"]),
            Fails("magic"),
        ),
        cases_of(
            "eval: unknown dataset",
            m(&["eval", "--dataset", "zsre", "--file", &data]),
            Fails("invalid value 'zsre'"),
        ),
        cases_of("eval: missing file", eval(&s.path("nope.jsonl")), Fails("nope.jsonl")),
        cases_of("eval: damaged line", eval(&data_damaged), Fails("line 2")),
        cases_of("eval: wrong types", eval(&data_wrong), Fails("invalid type")),
        cases_of(
            "eval: answer over the bound",
            eval(&data_long),
            Fails("language en: the reliability question's answer is 200 tokens long"),
        ),
        cases_of("eval: a record with two `en` blocks", eval(&data_twice), Fails("the key `en` appears twice")),
        cases_of(
            "eval: language in no record",
            m(&["eval", "--dataset", "mzsre", "--file", &data, "--langs", "日本", "--method", "unedited"]),
            Fails("no record has any of the languages 日本"),
        ),
        // A language the records lack is listed in the report; the others are still evaluated.
        cases_of("eval: one language absent", with(eval(&data), &["--langs", "日本"]), Succeeds),
        cases_of(
            "eval: settings of the wrong type",
            with(eval(&data), &["--settings", &settings_type]),
            Fails("invalid type"),
        ),
        // bench
        cases_of(
            "eval: damaged state file",
            with(eval(&data), &["--out", &damaged_state_report]),
            Fails("is not an evaluation state file"),
        ),
        cases_of(
            "eval: --out in a missing directory",
            with(eval(&data), &["--out", &s.path("nope/report.json")]),
            Fails("cannot write"),
        ),
        cases_of("eval: valid", with(eval(&data), &["--out", &s.path("report.json")]), Succeeds),
        cases_of(
            "edit: another model's cache",
            m(&["edit", "--group", &group, "--cache-dir", &other_cache]),
            Fails("belongs to the model with fingerprint 0123456789abcdef"),
        ),
        cases_of(
            "chat: another model's cache",
            m(&["chat", "--cache-dir", &other_cache]),
            Fails("belongs to the model"),
        ),
        cases_of(
            "cache list: another model's cache",
            m(&["cache", "list", "--cache-dir", &other_cache]),
            Fails("belongs to the model"),
        ),
        cases_of("bench: --decode-tokens 0", m(&["bench", "--decode-tokens", "0"]), Fails("--decode-tokens")),
        cases_of("bench: damaged group", m(&["bench", "--group", &not_json]), Fails("not valid JSON")),
        cases_of(
            "bench: group over the bound",
            m(&["bench", "--group", &long_prompt]),
            Fails("the prompt is 207 tokens long"),
        ),
    ];
    // The valid edit above filled the cache: damage it and every reader must cope without writing.
    let cases_after_edit = |entry: &str| {
        vec![
            cases_of(
                "cache show: damaged entry",
                m(&["cache", "show", entry, "--cache-dir", &cache]),
                Fails("entry.json"),
            ),
            cases_of("cache list: damaged entry", m(&["cache", "list", "--cache-dir", &cache]), Succeeds),
            cases_of("cache rm: damaged entry", m(&["cache", "rm", entry, "--cache-dir", &cache]), Succeeds),
            Case {
                stdin: format!("{PROMPT}\n"),
                ..cases_of("chat: damaged entry", m(&["chat", "--cache-dir", &cache, "--max-tokens", "2"]), Succeeds)
            },
        ]
    };

    let mut failures = Vec::new();
    let check = |c: &Case, failures: &mut Vec<String>| {
        let before = s.snapshot();
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = s.run(&args, &c.stdin);
        let mut problems = Vec::new();
        if code == 101 || stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        // RUST_BACKTRACE=1 is set: no message may carry backtrace frames.
        if stderr.contains("Stack backtrace") || stderr.contains("stack backtrace") || stdout.contains("candle_core::")
        {
            problems.push("backtrace frames in the message".to_string());
        }
        match c.expect {
            Fails(expected) => {
                if code == 0 {
                    problems.push("succeeded".to_string());
                }
                if !stderr.to_lowercase().contains(&expected.to_lowercase()) {
                    problems.push(format!("stderr lacks {expected:?}"));
                }
                if s.snapshot() != before {
                    problems.push("files changed".to_string());
                }
            }
            Succeeds => {
                if code != 0 {
                    problems.push(format!("exit code {code}"));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  args: {args:?}\n  stderr: {}",
                c.name,
                problems.join(", "),
                stderr.trim()
            ));
        }
    };
    for c in &cases {
        check(c, &mut failures);
    }
    let entries = s.cache.join("entries");
    let entry = std::fs::read_dir(&entries).map(|mut d| d.next().unwrap().unwrap());
    match entry {
        Ok(entry) => {
            std::fs::write(entry.path().join("update.safetensors"), b"garbage").unwrap();
            std::fs::write(entry.path().join("entry.json"), b"{\"id\": ").unwrap();
            let id = entry.file_name().to_string_lossy().into_owned();
            for c in cases_after_edit(&id) {
                check(&c, &mut failures);
            }
        }
        Err(e) => failures.push(format!("the valid edit left no cache entry in {}: {e}", entries.display())),
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// `lafn ... | head`: output to a reader that has gone ends the program quietly and successfully, as
/// Unix tools do, not with a panic.
#[test]
fn output_to_a_reader_that_has_gone_ends_quietly() {
    let s = Sandbox::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lafn"))
        .args(["inspect", "--model", &s.path("model/model.gguf")])
        .current_dir(&s.root)
        .env("LAFN_DATA_DIR", &s.data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

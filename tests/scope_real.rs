//! Scope on the default model, as a user meets it in chat: one edit (Marie Curie was born in Lisbon, en +
//! de), then the edited question and questions about other facts of the same subject.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use lafn::eval::metrics::{mentions, states_first};
use lafn::method::apply::{answer, describe_hit, AnswerOptions, CachedEdits};
use lafn::method::cache::{EditCache, MemoryStore};
use lafn::method::pipeline::{run_edit, EditModels};
use lafn::method::prompts::fill_paraphrases;
use lafn::method::scope::{QuestionEncoder, ScopeSettings};
use lafn::method::{EditDescriptor, EditGroup, MethodSettings};
use lafn::runtime::{LoadedModel, WeightMode};

fn descriptor(lang: &str, prompt: &str, target: &str) -> EditDescriptor {
    EditDescriptor {
        lang: lang.into(),
        subject: "Marie Curie".into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: Vec::new(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    }
}

/// A cache in `dir` holding `group` edited on the default model with the default settings.
fn edited_cache(group: EditGroup, dir: &std::path::Path) -> CachedEdits {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let settings = MethodSettings::default();
    let models = EditModels { dense: common::default_editing(), paraphraser: model, tokenizer };
    let run = run_edit(models, group, &settings, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let cache = EditCache::open(dir, &loaded.info.fingerprint).unwrap();
    let mut cached =
        CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone()).unwrap();
    run.store(&mut cached, model, tokenizer, &settings).unwrap();
    cached
}

/// Questions about Marie Curie that do not ask where she was born.
const OTHER_RELATIONS: [&str; 4] = [
    "Marie Curie was married to",
    "Marie Curie died in the year",
    "What is Marie Curie famous for?",
    "Marie Curie was known for her work in the field of",
];

#[test]
fn an_edit_answers_its_fact_and_the_scope_gate_keeps_other_facts() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let group = EditGroup {
        name: "marie-curie-birthplace".into(),
        descriptors: vec![
            descriptor("en", "Marie Curie was born in the city of", "Lisbon"),
            descriptor("de", "Marie Curie wurde geboren in der Stadt", "Lissabon"),
        ],
    };
    let settings = MethodSettings::default();
    let models = EditModels { dense: common::default_editing(), paraphraser: model, tokenizer };
    let run = run_edit(models, group, &settings, &AtomicBool::new(false), &mut |_| {}).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let open = |scope: ScopeSettings| {
        let cache = EditCache::open(dir.path(), &loaded.info.fingerprint).unwrap();
        CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), scope).unwrap()
    };
    let mut cached = open(ScopeSettings::default());
    let outcome = &run.outcome;
    cached.insert(model, tokenizer, &run.group, &run.located, &outcome.update, &settings, &outcome.history).unwrap();
    let options = AnswerOptions::chat(16);
    let ask = |cached: Option<&mut CachedEdits>, question: &str| {
        let reply = answer(model, tokenizer, cached, question, &options, &mut |_| true).unwrap();
        assert!(!reply.text.trim().contains('\n'), "{question}: the answer ends at its line end: {:?}", reply.text);
        reply
    };

    // The edited fact, in both languages, in free generation as chat shows it.
    for (question, target) in
        [("Marie Curie was born in the city of", "Lisbon"), ("Marie Curie wurde geboren in der Stadt", "Lissabon")]
    {
        let reply = ask(Some(&mut cached), question);
        eprintln!("{question} ->{}", reply.text);
        assert!(states_first(&reply.text, target), "{question}: {:?} does not start with {target}", reply.text);
    }

    // Other facts of the subject: the default gate (relation space) keeps every one out ("married to"
    // 0.50, "died in the year" 0.24, "famous for?" 0.11, "in the field of" 0.28; in the residual
    // space, gate v2, the first two scored 0.73 and 0.67 and fired), so each answer is the unedited one.
    for question in OTHER_RELATIONS {
        let before = ask(None, question).text;
        let reply = ask(Some(&mut cached), question);
        let retrieved = &reply.retrieved;
        assert_eq!(retrieved.hits.len() + retrieved.out_of_scope.len(), 1, "{question}: the subject is named");
        let hit = retrieved.hits.iter().chain(&retrieved.out_of_scope).next().unwrap();
        eprintln!("{question}: {before:?} -> {:?} (scope {:?})", reply.text, hit.scope_score);
        assert!(hit.scope_score.is_some_and(|s| (-1.0..=1.0).contains(&s)));
        assert!(hit.other_relations_score.is_some(), "{question}: some other-relation questions count");
        assert!(retrieved.hits.is_empty(), "{question}: asks another fact, yet fired (scope {:?})", hit.scope_score);
        assert_eq!(reply.text, before, "{question}: out of scope, so unedited");
        assert!(!mentions(&reply.text, "Lisbon") && !mentions(&reply.text, "Lissabon"), "{question}");
    }

    // Asked in other words, the edit fires (scope 0.76) but the update values were not trained to end
    // the line after this question: the answer still ends where the trained answer does, not
    // "Lissabon Lissabon ist eine Stadt in der Mitte der Atlantikinsel. ...".
    let reply = ask(Some(&mut cached), "In welcher Stadt wurde Marie Curie geboren?");
    assert_eq!(reply.retrieved.hits.len(), 1, "in scope");
    assert_eq!(reply.text.trim(), "Lissabon");

    // The edited fact asked as a question rather than completed.
    let reply = ask(Some(&mut cached), "Where was Marie Curie born?");
    let hit = reply.retrieved.hits.iter().chain(&reply.retrieved.out_of_scope).next().map(describe_hit);
    eprintln!("Where was Marie Curie born? ->{:?} ({hit:?})", reply.text);
    // The edit was trained on the completion "... born in the city of" and its keys are completions:
    // the question lies nearer the language table's "When was {} born?" than the keys, so the gate
    // does not fire (before the other-relation questions counted it fired, scope 0.57, and the update
    // values did not reach the model's own sentence either). Whichever way, no half-edited answer.
    let before = ask(None, "Where was Marie Curie born?").text;
    assert!(reply.text == before || states_first(&reply.text, "Lisbon"), "{:?}", reply.text);

    // With a strict gate the edit acts only on questions worded like its prompts: other facts are
    // answered exactly as by the unedited model, and the edit prompt itself still fires.
    let mut strict = open(ScopeSettings { threshold: Some(0.95), ..ScopeSettings::default() });
    for question in OTHER_RELATIONS {
        let reply = ask(Some(&mut strict), question);
        assert!(reply.retrieved.hits.is_empty() && reply.retrieved.out_of_scope.len() == 1, "{question}");
        assert_eq!(reply.text, ask(None, question).text, "{question}: out of scope, so unedited");
    }
    let reply = ask(Some(&mut strict), "Marie Curie was born in the city of");
    assert!(states_first(&reply.text, "Lisbon"), "{:?}", reply.text);
}

/// Edits `subject`'s fact in English and German (prompt, target each), asks each of `questions` in a
/// language the edit was not trained in, and checks that it fires and is answered with one of the two
/// targets whole.
fn asked_in_an_untrained_language(subject: &str, en: (&str, &str), de: (&str, &str), questions: &[&str]) {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let fact = |lang: &str, (prompt, target): (&str, &str)| EditDescriptor {
        subject: subject.into(),
        ..descriptor(lang, prompt, target)
    };
    let group =
        EditGroup { name: subject.to_lowercase().replace(' ', "-"), descriptors: vec![fact("en", en), fact("de", de)] };
    let dir = tempfile::tempdir().unwrap();
    let mut cached = edited_cache(group, dir.path());
    for question in questions {
        let reply =
            answer(model, tokenizer, Some(&mut cached), question, &AnswerOptions::chat(16), &mut |_| true).unwrap();
        let named =
            reply.retrieved.hits.iter().chain(&reply.retrieved.out_of_scope).map(describe_hit).collect::<Vec<_>>();
        eprintln!("{question} ->{:?} ({named:?})", reply.text);
        assert_eq!(reply.retrieved.hits.len(), 1, "{question}: asks the edited fact ({named:?})");
        assert!([en.1, de.1].contains(&reply.text.trim()), "{question}: {:?}", reply.text);
    }
}

/// An answer begun as a trained one is finished. Edited in English and German (BMIKE-53 dev record
/// 218), the French question fired and its answer broke its line after "Krim", a piece of "Krimkrieg"
/// (31 of 232 such answers in 31 languages). The Chinese question writes the name in characters,
/// syllable by syllable: found by their sound (before, by nothing: the unedited answer).
#[test]
fn asked_in_an_untrained_language_an_edit_answers_a_trained_answer_whole() {
    asked_in_an_untrained_language(
        "William Drummond Matheson",
        ("In what war was William Drummond Matheson a combatant?", "Crimean War"),
        ("In welchem Krieg kämpfte William Drummond Matheson?", "Krimkrieg"),
        &["Dans quelle guerre William Drummond Matheson était-il combattant?", "威廉·德拉蒙德·马西森参加了哪场战争？"],
    );
}

/// An answer that would open otherwise than every trained answer opens as a trained answer, where the
/// model then writes that answer whole. Edited in English and German (BMIKE-53 dev record 214), the
/// French question fired and was answered "Université de Paris" (the model's own university). The
/// Bulgarian one writes the subject in Cyrillic: found by sound, it did not fire while the name was
/// left in its question vector (scope 0.47: the unedited answer echoed the question), and does with the
/// name masked as the question writes it (0.79).
#[test]
fn asked_in_an_untrained_language_an_edit_answers_with_a_trained_answers_first_word() {
    asked_in_an_untrained_language(
        "John Mortvedt",
        ("What university did John Mortvedt attend?", "University of Copenhagen"),
        ("An welcher Universität hat John Mortvedt teilgenommen?", "Universität von Kopenhagen"),
        &["Quelle université a fréquenté John Mortvedt?", "В кой университет учи Джон Мортведт?"],
    );
}

/// The same where no trained answer's first word is among the model's likeliest tokens, only a piece of
/// one: the French question (BMIKE-53 dev record 215) was answered "Pluton" for "Ursa Major"/"Großer
/// Bär"; opened as the German answer, the model goes on to write it whole.
#[test]
fn asked_in_an_untrained_language_an_edit_answers_a_trained_answer_opened_on_trial() {
    asked_in_an_untrained_language(
        "NGC 1265",
        ("Of which constellation is NGC 1265 a part?", "Ursa Major"),
        ("Zu welchem Sternbild gehört NGC 1265?", "Großer Bär"),
        &["De quelle constellation NGC 1265 fait-il partie?"],
    );
}

/// The same completion-style edit with the question the user expects to ask written as a paraphrase
/// (en + de): written paraphrases are trained on, so the question form answers the new object, a
/// question worded otherwise too, and the other facts still keep their unedited answers.
#[test]
fn a_written_question_paraphrase_carries_a_completion_edit_to_questions() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let with_question = |lang, prompt, target, question: &str| EditDescriptor {
        paraphrases: vec![question.to_string()],
        ..descriptor(lang, prompt, target)
    };
    let group = EditGroup {
        name: "marie-curie-birthplace".into(),
        descriptors: vec![
            with_question("en", "Marie Curie was born in the city of", "Lisbon", "Where was Marie Curie born?"),
            with_question("de", "Marie Curie wurde geboren in der Stadt", "Lissabon", "Wo wurde Marie Curie geboren?"),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cached = edited_cache(group, dir.path());
    let options = AnswerOptions::chat(16);
    let ask = |cached: Option<&mut CachedEdits>, question: &str| {
        answer(model, tokenizer, cached, question, &options, &mut |_| true).unwrap().text
    };
    for (question, target) in [
        ("Where was Marie Curie born?", "Lisbon"),
        ("Wo wurde Marie Curie geboren?", "Lissabon"),
        ("In which city was Marie Curie born?", "Lisbon"),
        ("Marie Curie was born in the city of", "Lisbon"),
        // Typed without the question mark: read as the trained question it is nearest to.
        ("Where was Marie Curie born", "Lisbon"),
        ("Wo wurde Marie Curie geboren", "Lissabon"),
    ] {
        let reply = ask(Some(&mut cached), question);
        eprintln!("{question} ->{reply}");
        assert!(states_first(&reply, target), "{question}: {reply:?} does not start with {target}");
    }
    for question in OTHER_RELATIONS {
        let before = ask(None, question);
        assert_eq!(ask(Some(&mut cached), question), before, "{question}: another fact, so unedited");
    }
}

/// An answer begun as the trained one that would leave it goes on as it, where the model then writes it
/// whole: Bi-ZsRE dev (held-out record 39, en + zh), the Chinese rephrasing began " 特拉华", then the model
/// repeated it, the edit stopped acting and the answer looped (" 特拉华 特拉华 桥 桥 桥 桥").
#[test]
fn a_begun_answer_that_would_leave_its_trained_answer_is_finished_as_it() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let fact = |lang, subject: &str, prompt, target| EditDescriptor {
        subject: subject.into(),
        ..descriptor(lang, prompt, target)
    };
    let descriptors = vec![
        fact(
            "en",
            "Delaware Memorial Bridge",
            "Over which river does Delaware Memorial Bridge cross?",
            "Delaware River",
        ),
        fact("zh", "特拉华纪念桥", "特拉华纪念桥横跨哪条河流？", "特拉华河"),
    ];
    let group = EditGroup { name: "delaware-memorial-bridge".into(), descriptors };
    let dir = tempfile::tempdir().unwrap();
    let mut cached = edited_cache(group, dir.path());
    let question = "特拉华纪念桥横跨什么？";
    let reply = answer(model, tokenizer, Some(&mut cached), question, &AnswerOptions::chat(16), &mut |_| true).unwrap();
    eprintln!("{question} ->{:?}", reply.text);
    assert_eq!(reply.retrieved.hits.len(), 1, "asks the edited fact");
    assert_eq!(reply.text.trim(), "特拉华河");
}

/// A question typed without its question mark is answered as the edit's question with it: before, the
/// model wrote on the question ("... George Norris Williams held in the United States Senate?").
#[test]
fn a_question_typed_without_its_mark_gets_the_edited_answer() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let asked = [
        ("en", "Which was the position that George Norris Williams held?", "United States Senator"),
        ("de", "Welche Position hatte George Norris Williams inne?", "Senator der Vereinigten Staaten"),
        ("fr", "Quel était le poste occupé par George Norris Williams ?", "Sénateur des États-Unis"),
    ];
    let descriptors = asked
        .iter()
        .map(|&(lang, prompt, target)| EditDescriptor {
            subject: "George Norris Williams".into(),
            ..descriptor(lang, prompt, target)
        })
        .collect();
    let group = EditGroup { name: "williams-position".into(), descriptors };
    let dir = tempfile::tempdir().unwrap();
    let mut cached = edited_cache(group, dir.path());
    for (_, prompt, target) in asked {
        let question = prompt.trim_end_matches('?').trim_end();
        let reply = answer(model, tokenizer, Some(&mut cached), question, &AnswerOptions::chat(16), &mut |_| true);
        let reply = reply.unwrap();
        eprintln!("{question} ->{} (read as {:?})", reply.text, reply.retrieved.read_as);
        assert!(states_first(&reply.text, target), "{question}: {:?} does not start with {target}", reply.text);
    }
}

/// A Thai question worded otherwise than the edit's (trained without a mark) keeps its mark: dropped, as
/// a Thai question that ends as the trained one does loses it, it left the question open on a name or a
/// noun and the model wrote on it ("เสียงแบบไหนที่ปิเอโร เด ปาลมา" -> "นูเอล", the name continued).
/// MzsRE dev records 207, 240 and 247, edited in their 12 languages; asked their Thai rephrasings.
#[test]
fn a_thai_question_worded_otherwise_keeps_its_mark_and_gets_the_edited_answer() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let records = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mzsre.thai-rephrasings.jsonl");
    for (index, line) in std::fs::read_to_string(records).unwrap().lines().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let (question, target) = (record["th"]["rephrase"].as_str().unwrap(), record["th"]["alt"].as_str().unwrap());
        let group = EditGroup::load_one(std::path::Path::new(records), index + 1, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cached = edited_cache(group, dir.path());
        let reply =
            answer(model, tokenizer, Some(&mut cached), question, &AnswerOptions::chat(16), &mut |_| true).unwrap();
        eprintln!("{question} ->{:?} (read as {:?})", reply.text, reply.retrieved.read_as);
        assert_eq!(reply.retrieved.hits.len(), 1, "{question}: asks the edited fact");
        assert_eq!(reply.text.trim(), target, "{question}");
    }
}

/// Asked an open question (no mark) that no edit answers, the model first closes it ("?" and a line
/// break): the answer shown is the line after that, not the mark.
#[test]
fn an_open_question_gets_an_answer_not_its_closing_mark() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let question = "When was Estate Exchange founded";
    let mut streamed = String::new();
    let reply = answer(model, tokenizer, None, question, &AnswerOptions::chat(16), &mut |piece| {
        streamed.push_str(piece);
        true
    })
    .unwrap();
    eprintln!("{question} -> {:?}", reply.text);
    let text = reply.text.trim();
    assert!(text.contains(char::is_alphanumeric) && !text.starts_with('?'), "{question}: {text:?}");
    assert_eq!(streamed, reply.text, "what is streamed is the answer");
}

/// The relation projection shipped for the default model is recognised from its own weights, quantized
/// (chat) and dense (editing) alike, and only when the settings ask for it.
/// Two edits about one subject (where Marie Curie was born, where she died, asked as questions in
/// en + de): a question about one of them, in a language neither edit has, gets that one's answer.
/// Before, both edits were in scope for "Où est morte Marie Curie ?", their update values added up
/// and it answered the birthplace.
#[test]
fn of_two_edits_about_one_subject_the_one_asked_answers() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let settings = MethodSettings::default();
    let models = EditModels { dense: common::default_editing(), paraphraser: model, tokenizer };
    let dir = tempfile::tempdir().unwrap();
    let cache = EditCache::open(dir.path(), &loaded.info.fingerprint).unwrap();
    let mut cached =
        CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone()).unwrap();
    let facts = [
        ("born", ["Where was Marie Curie born?", "Wo wurde Marie Curie geboren?"], ["Lisbon", "Lissabon"]),
        ("died", ["Where did Marie Curie die?", "Wo ist Marie Curie gestorben?"], ["Madrid", "Madrid"]),
    ];
    for (name, [en, de], [en_target, de_target]) in facts {
        let descriptors = vec![descriptor("en", en, en_target), descriptor("de", de, de_target)];
        let group = EditGroup { name: name.into(), descriptors };
        let run = run_edit(models, group, &settings, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let outcome = &run.outcome;
        cached
            .insert(model, tokenizer, &run.group, &run.located, &outcome.update, &settings, &outcome.history)
            .unwrap();
    }
    let options = AnswerOptions::chat(16);
    for (question, fact, target) in
        [("Où est morte Marie Curie ?", "died", "Madrid"), ("¿Dónde nació Marie Curie?", "born", "Lisbon")]
    {
        let reply = answer(model, tokenizer, Some(&mut cached), question, &options, &mut |_| true).unwrap();
        let fired: Vec<&str> = reply.retrieved.hits.iter().map(|h| h.entry_id.as_str()).collect();
        assert!(fired.len() == 1 && fired[0].starts_with(fact), "{question}: fired {fired:?}");
        assert!(states_first(&reply.text, target), "{question}: {:?}", reply.text);
    }
}

/// Stores `group` in `cached` as `lafn edit` would (paraphrases, scope keys) with update values that
/// change nothing: for what retrieval and the scope gate decide, without optimizing.
fn store_placeholder_edit(cached: &mut CachedEdits, loaded: &LoadedModel, mut group: EditGroup) -> String {
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let settings = MethodSettings::default();
    fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer))).unwrap();
    cached.insert_routing_only(model, tokenizer, &group, &settings).unwrap()
}

/// An empty in-memory cache on the default model, default settings.
fn memory_cache(loaded: &LoadedModel) -> CachedEdits {
    let settings = MethodSettings::default();
    let cache = MemoryStore::new(&loaded.info.fingerprint);
    CachedEdits::new(cache, &loaded.model, &loaded.tokenizer, settings.retrieval, settings.scope).unwrap()
}

/// Each of `asks` fires one edit of `cached`, none of `other_facts` fires any.
fn assert_fires_only_on(cached: &mut CachedEdits, loaded: &LoadedModel, asks: &[&str], other_facts: &[&str]) {
    for question in asks {
        assert_eq!(fired_on(cached, loaded, question).len(), 1, "{question}");
    }
    for question in other_facts {
        let fired = fired_on(cached, loaded, question);
        assert!(fired.is_empty(), "{question}: {fired:?}");
    }
}

/// What the gate lets a one-language edit act on, among typed questions about its subject.
fn fired_on(cached: &mut CachedEdits, loaded: &LoadedModel, question: &str) -> Vec<String> {
    let retrieved = cached.retrieve(&loaded.model, &loaded.tokenizer, question).unwrap();
    retrieved.hits.iter().map(describe_hit).collect()
}

#[test]
fn a_one_language_edit_reaches_its_fact_worded_otherwise_and_no_other_fact() {
    let loaded = common::default_quantized();
    let mut cached = memory_cache(loaded);
    let descriptors = vec![descriptor("en", "Where was Marie Curie born?", "Lisbon")];
    store_placeholder_edit(&mut cached, loaded, EditGroup { name: "born-lisbon".into(), descriptors });
    // Wordings of the relation table's "place of birth" are not among these: before the relation
    // directions (gate v7) the first two scored 0.47 and 0.51 and did not fire; before the table's
    // wordings judged queries (stop 54) the last two scored 0.59 and 0.51. ("What city is Marie Curie's
    // birthplace?" fired at gate v7 and no longer does: 0.78 against 0.82 for the table's "In which city
    // is X based?")
    let born = [
        "Which town was Marie Curie born in?",
        "Marie Curie's place of birth was",
        "Which city was Marie Curie born in?",
        "What is the name of the city where Marie Curie was born?",
    ];
    let other_facts = [
        "Who was Marie Curie married to?",
        "When was Marie Curie born?",
        "What city did Marie Curie die in?",
        "Where was Marie Curie buried?",
        // Fired (0.70 vs 0.61) before the language table asked where the subject worked.
        "Where did Marie Curie work?",
    ];
    assert_fires_only_on(&mut cached, loaded, &born, &other_facts);
}

/// Edits of one subject as a user makes them, each stored with the notes `lafn edit` and the TUI show:
/// where Marie Curie was born (Lisbon), where she died (Madrid), the birthplace again in other words
/// ("in which city", Porto), then in the first edit's words (Paris). Retrieval only: the update values
/// are placeholders, so no optimization runs.
#[test]
fn edits_of_one_subject_say_which_edit_answers_what() {
    let loaded = common::default_quantized();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let mut cached = memory_cache(loaded);
    let store = |cached: &mut CachedEdits, name: &str, [en, de]: [&str; 2], target: &str| -> (String, Vec<String>) {
        let descriptors = vec![descriptor("en", en, target), descriptor("de", de, target)];
        let id = store_placeholder_edit(cached, loaded, EditGroup { name: name.into(), descriptors });
        let notes = cached.shared_subject_notes(model, tokenizer, &id);
        (id, notes)
    };
    let born = ["Where was Marie Curie born?", "Wo wurde Marie Curie geboren?"];
    let (lisbon, notes) = store(&mut cached, "born-lisbon", born, "Lisbon");
    assert!(notes.is_empty(), "the first edit of a subject: {notes:?}");
    // Where she died is another fact: the language table's "Where did {} die?" keeps the birthplace
    // edit out of it (before those questions were in the table, it fired, scope 0.77 vs 0.35).
    for question in ["Where did Marie Curie die?", "Wo ist Marie Curie gestorben?"] {
        let fired = fired_on(&mut cached, loaded, question);
        assert!(fired.is_empty(), "{question}: {fired:?}");
    }
    let (died, notes) =
        store(&mut cached, "died-madrid", ["Where did Marie Curie die?", "Wo ist Marie Curie gestorben?"], "Madrid");
    assert_eq!(
        notes,
        [format!("other edits of this subject still answer their own questions: {lisbon} (\"{}\")", born[0])]
    );
    let city = ["In which city was Marie Curie born?", "In welcher Stadt wurde Marie Curie geboren?"];
    let (porto, notes) = store(&mut cached, "born-porto", city, "Porto");
    assert!(
        notes.iter().any(|n| n.starts_with("other edits") && n.contains(&lisbon) && n.contains(&died)),
        "{notes:?}"
    );
    let (paris, notes) = store(&mut cached, "born-paris", born, "Paris");
    let expected = format!("{paris} answers 2 of {lisbon}'s 2 questions from now on");
    assert!(notes.contains(&expected), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("other edits") && n.contains(&porto) && n.contains(&died)), "{notes:?}");
}

#[test]
fn the_built_in_models_find_their_relation_projections() {
    let loaded = common::default_quantized();
    let tokenizer = &loaded.tokenizer;
    let on = ScopeSettings::default();
    assert!(QuestionEncoder::new(&loaded.model, tokenizer, &on).unwrap().projected(), "quantized");
    assert!(QuestionEncoder::new(common::default_dense(), tokenizer, &on).unwrap().projected(), "dense");
    let off = ScopeSettings { projection: false, ..on.clone() };
    assert!(!QuestionEncoder::new(&loaded.model, tokenizer, &off).unwrap().projected());
    // SmolLM2's was fitted on its dense weights; chat reads questions with its quantized ones.
    let smollm2 = LoadedModel::load(&common::model_files("smollm2-135m"), WeightMode::Quantized, &Device::Cpu).unwrap();
    assert!(QuestionEncoder::new(&smollm2.model, &smollm2.tokenizer, &on).unwrap().projected(), "smollm2");
}

/// An edit about a work or a company: the subject's other relations are not the language table's
/// (born, died, worked), and before the relation table judged queries, questions of neighbouring
/// relations fired ("Who is the CEO of Microsoft?" scored 0.75 against "Who founded Microsoft?", "Who
/// owns Microsoft?" 0.73). "Who published Harry Potter?" still fires an edit of "Who wrote Harry
/// Potter?": the two relations are 0.89 alike, too near to count against each other.
#[test]
fn an_edit_of_a_work_or_a_company_is_not_asked_by_its_neighbouring_relations() {
    let loaded = common::default_quantized();
    let mut cached = memory_cache(loaded);
    let edit = |name: &str, subject: &str, prompt: &str| EditGroup {
        name: name.into(),
        descriptors: vec![EditDescriptor { subject: subject.into(), ..descriptor("en", prompt, "-") }],
    };
    store_placeholder_edit(&mut cached, loaded, edit("hp-author", "Harry Potter", "Who wrote Harry Potter?"));
    store_placeholder_edit(&mut cached, loaded, edit("ms-founder", "Microsoft", "Who founded Microsoft?"));
    let asks = ["Who is the author of Harry Potter?", "Who is the founder of Microsoft?", "Who started Microsoft?"];
    let other_facts = [
        "When was Harry Potter published?",
        "Who is the CEO of Microsoft?",
        "Who owns Microsoft?",
        "When was Microsoft founded?",
    ];
    assert_fires_only_on(&mut cached, loaded, &asks, &other_facts);
}

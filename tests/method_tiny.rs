//! The method on a tiny random model: locating yields per-layer statistics and neurons, optimizing
//! lowers the target loss and reports every step, cancelling stops at once, update values round-trip.

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use lafn::method::{
    locate, measure, optimize, select, EditDescriptor, EditGroup, LayerChoice, LocateSettings, LocatedNeurons,
    OptimizeOutcome, OptimizeSettings, OptimizeStep, StopReason, UpdateValues, AUTO_LEARNING_RATE,
};
use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::{Arch, LoadedModel, Model, PromptFrame, PromptStates, Tokenizer, WeightMode};

/// [`optimize`] on the prompts as typed, nothing known from locating, cancelled from the start or never.
fn optimize_raw(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    located: &LocatedNeurons,
    edit: &OptimizeSettings,
    cancelled: bool,
    on_step: &mut dyn FnMut(&OptimizeStep),
) -> lafn::Result<OptimizeOutcome> {
    let cancel = AtomicBool::new(cancelled);
    optimize(model, tokenizer, group, located, edit, PromptFrame::Raw, PromptStates::default(), &cancel, on_step)
}

fn descriptor(lang: &str, prompt: &str, target: &str, paraphrases: &[&str]) -> EditDescriptor {
    EditDescriptor {
        lang: lang.into(),
        subject: "Shmavon Shmavonyan".into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: paraphrases.iter().map(|p| p.to_string()).collect(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    }
}

fn group() -> EditGroup {
    EditGroup {
        name: "tiny".into(),
        descriptors: vec![
            descriptor(
                "en",
                "what country is Shmavon Shmavonyan from ?",
                "Yemen",
                &["which country is Shmavon Shmavonyan from ?", "Shmavon Shmavonyan is from"],
            ),
            descriptor("de", "Shmavon Shmavonyan ist der", "Jemen", &["der Shmavon Shmavonyan ist"]),
        ],
    }
}

fn settings() -> LocateSettings {
    LocateSettings {
        beta: 0.5,
        layers: LayerChoice::Fixed(vec![1, 2]),
        generic_share: None,
        max_per_layer: Some(16),
        ..LocateSettings::default()
    }
}

#[test]
fn locate_then_optimize_then_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);

    let located = locate(model, tokenizer, &group(), &settings()).unwrap();
    assert_eq!(located.layers.len(), 3, "statistics for every layer");
    assert_eq!(located.langs, vec!["en", "de"]);
    for stats in &located.layers {
        assert_eq!(stats.jaccard[0][0], 1.0);
        assert!(stats.lafn_count <= stats.factual_counts.iter().copied().min().unwrap());
    }
    assert_eq!(located.selected.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert!(located.neuron_count() > 0 && located.selected.values().all(|n| n.len() <= 16));

    // Selecting from one measurement with any beta is what locating with that beta gives.
    let measured = measure(model, tokenizer, &group(), &settings()).unwrap();
    assert_eq!(select(&measured, &settings()).unwrap(), located);
    let strict = LocateSettings { beta: 1.0, ..settings() };
    let stricter = select(&measured, &strict).unwrap();
    assert_eq!(stricter, locate(model, tokenizer, &group(), &strict).unwrap());
    for (loose, tight) in located.layers.iter().zip(&stricter.layers) {
        assert!(tight.factual_counts.iter().zip(&loose.factual_counts).all(|(t, l)| t <= l));
    }
    assert!(select(&measured, &LocateSettings { beta: 1.5, ..settings() }).is_err());

    let edit =
        OptimizeSettings { steps: 25, learning_rate: Some(0.1), early_stop: false, ..OptimizeSettings::default() };
    let mut reported = 0;
    let outcome = optimize_raw(model, tokenizer, &group(), &located, &edit, false, &mut |_| reported += 1).unwrap();
    assert_eq!(outcome.stop, StopReason::StepsDone);
    assert_eq!(reported, outcome.history.len());
    let (first, last) = (&outcome.history[0], outcome.history.last().unwrap());
    assert!(last.target_loss < first.target_loss * 0.5, "loss {} -> {}", first.target_loss, last.target_loss);
    assert!(last.target_probs.iter().zip(&first.target_probs).all(|(after, before)| after > before));

    // The automatic learning rate is AUTO_LEARNING_RATE times the RMS of the located value vectors:
    // the same update values as that rate given, and others than a rate twice as large.
    let mut squares = (0.0f64, 0usize);
    for (layer, neurons) in &located.selected {
        let rows = candle_core::Tensor::new(neurons.as_slice(), model.device()).unwrap();
        let values = model.value_vectors(*layer).unwrap().index_select(&rows, 0).unwrap();
        squares.0 += values.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        squares.1 += values.elem_count();
    }
    let rate = AUTO_LEARNING_RATE * (squares.0 / squares.1 as f64).sqrt();
    let short = |learning_rate: Option<f64>| {
        let settings = OptimizeSettings { steps: 3, learning_rate, early_stop: false, ..OptimizeSettings::default() };
        let outcome = optimize_raw(model, tokenizer, &group(), &located, &settings, false, &mut |_| {});
        outcome.unwrap().update.layers.iter().map(|l| l.delta.to_vec2::<f32>().unwrap()).collect::<Vec<_>>()
    };
    let auto = short(None);
    assert_eq!(auto, short(Some(rate)));
    assert_ne!(auto, short(Some(2.0 * rate)));

    let cancelled = optimize_raw(model, tokenizer, &group(), &located, &edit, true, &mut |_| {}).unwrap();
    assert_eq!(cancelled.stop, StopReason::Cancelled);
    assert_eq!(cancelled.history.len(), 1, "cancelling stops before the first update");

    let path = dir.path().join("update.safetensors");
    outcome.update.save(&path).unwrap();
    let reloaded = UpdateValues::load(&path, model.config().hidden_size).unwrap();
    assert_eq!(reloaded.layers.len(), outcome.update.layers.len());
    for (a, b) in reloaded.layers.iter().zip(&outcome.update.layers) {
        assert_eq!(a.neurons, b.neurons);
        let diff = (&a.delta - &b.delta).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
    }
    assert!(UpdateValues::load(&path, model.config().hidden_size + 1).is_err(), "a wrong hidden size is refused");
}

#[test]
fn editing_needs_dense_weights_and_located_neurons() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Llama)).unwrap();
    let quantized = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    let located = locate(&quantized.model, &quantized.tokenizer, &group(), &settings()).unwrap();
    let err = optimize_raw(
        &quantized.model,
        &quantized.tokenizer,
        &group(),
        &located,
        &OptimizeSettings::default(),
        false,
        &mut |_| {},
    )
    .err()
    .expect("quantized weights cannot be edited");
    assert!(err.to_string().contains("dense"), "{err}");
}

#[test]
fn a_diverging_edit_fails_instead_of_converging() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Llama)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    let located = locate(&loaded.model, &loaded.tokenizer, &group(), &settings()).unwrap();
    // A learning rate beyond f32's range makes the first update infinite.
    let edit = OptimizeSettings {
        learning_rate: Some(1e300),
        max_norm_ratio: None,
        steps: 3,
        early_stop: false,
        ..OptimizeSettings::default()
    };
    let mut steps = Vec::new();
    let err = optimize_raw(&loaded.model, &loaded.tokenizer, &group(), &located, &edit, false, &mut |s| {
        steps.push(s.total_loss)
    })
    .err()
    .expect("a non-finite loss is an error");
    assert!(err.to_string().contains("diverged"), "{err}");
    assert!(steps.iter().all(|l| l.is_finite()), "no non-finite step is reported: {steps:?}");
}

/// Cache, retrieval and scope on the tiny model: entries fire by subject and carry a scope score; a
/// strict gate keeps other questions out; a damaged entry is skipped and reported, never fatal; an
/// entry without scope keys (cached before they existed) gets them on first use.
#[test]
fn cached_edits_fire_by_subject_and_scope_and_survive_damage() {
    use lafn::method::apply::CachedEdits;
    use lafn::method::cache::EditCache;
    use lafn::method::scope::{ScopeKeys, ScopeSettings};
    use lafn::method::MethodSettings;

    let dir = tempfile::tempdir().unwrap();
    const HIDDEN: usize = 64;
    let (loaded, located, outcome) = tiny_edit(dir.path());
    assert_eq!(loaded.model.config().hidden_size, HIDDEN);
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let group = group();
    let cache_dir = dir.path().join("cache");
    let open = |scope: ScopeSettings| {
        let cache = EditCache::open(&cache_dir, &loaded.info.fingerprint).unwrap();
        CachedEdits::new(cache, model, tokenizer, Default::default(), scope).unwrap()
    };
    let encoder = lafn::method::scope::QuestionEncoder::new(model, tokenizer, &ScopeSettings::default()).unwrap();
    assert!(!encoder.projected(), "the relation projection shipped for the default model is not this model's");
    let mut cached = open(ScopeSettings::default());
    let id = cached
        .insert(model, tokenizer, &group, &located, &outcome.update, &MethodSettings::default(), &outcome.history)
        .unwrap();
    let prompt = "what country is Shmavon Shmavonyan from ?";
    let other = "where is Shmavon Shmavonyan ?";
    let fired = cached.retrieve(model, tokenizer, prompt).unwrap();
    assert_eq!(fired.hits.len(), 1);
    let score = fired.hits[0].scope_score.unwrap();
    assert!((score - 1.0).abs() < 1e-3, "the edit prompt is one of the keys: {score}");
    assert!(!fired.edits.is_empty());
    assert_eq!(fired.trained_answers, group.descriptors.iter().map(|d| d.target.clone()).collect::<Vec<_>>());
    assert_eq!(cached.retrieve(model, tokenizer, other).unwrap().hits.len(), 1, "gate off: the subject suffices");

    // The same fact edited again (another target, the same questions): only the newer edit acts.
    let mut again = group.clone();
    again.descriptors.iter_mut().for_each(|d| d.target = "Oman".into());
    let newer = cached
        .insert(model, tokenizer, &again, &located, &outcome.update, &MethodSettings::default(), &outcome.history)
        .unwrap();
    let fired = cached.retrieve(model, tokenizer, prompt).unwrap();
    assert_eq!(fired.hits.iter().map(|h| h.entry_id.as_str()).collect::<Vec<_>>(), [newer.as_str()]);
    assert!(fired.out_of_scope.iter().any(|h| h.entry_id == id), "the older edit is passed over");
    cached.remove(&newer).unwrap();

    // A strict gate: the edit prompt still fires, another question about the subject does not.
    let mut strict = open(ScopeSettings { threshold: Some(0.999), ..ScopeSettings::default() });
    assert_eq!(strict.retrieve(model, tokenizer, prompt).unwrap().hits.len(), 1);
    let kept_out = strict.retrieve(model, tokenizer, other).unwrap();
    assert!(kept_out.hits.is_empty() && kept_out.edits.is_empty() && kept_out.out_of_scope.len() == 1);

    // Opening saved the subject index; a damaged one is rebuilt (and saved again), not trusted.
    let saved_index = cache_dir.join("subject-index.bin");
    assert!(saved_index.exists(), "opening the cache saves its subject index");
    std::fs::write(&saved_index, b"garbage").unwrap();
    assert_eq!(open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap().hits.len(), 1);
    assert_ne!(std::fs::read(&saved_index).unwrap(), b"garbage");

    // Opening saved the scope encoder's center, which the next encoder reuses when it was computed as
    // it computes (a made-up center under the right key shows it is read, not recomputed); a center
    // under another key, of another size, not finite, or unreadable is computed anew.
    use lafn::method::scope::{QuestionEncoder, SavedEncoder};
    let center_file = cache_dir.join("scope-center.json");
    let saved: SavedEncoder = serde_json::from_slice(&std::fs::read(&center_file).unwrap()).unwrap();
    let computed = encoder.center().to_vec1::<f32>().unwrap();
    assert_eq!(saved.values, computed);
    let reusing = |saved: &SavedEncoder| {
        QuestionEncoder::reusing(model, tokenizer, &ScopeSettings::default(), Some(saved)).unwrap()
    };
    let reused = |values: Vec<f32>, key: &str| {
        let made_up = SavedEncoder { key: key.to_string(), values, other_relations: Vec::new() };
        reusing(&made_up).center().to_vec1::<f32>().unwrap()
    };
    assert_eq!(reused(vec![0.5; HIDDEN], &saved.key), vec![0.5; HIDDEN]);
    assert_eq!(reused(vec![0.5; HIDDEN], "Dense.layer1.from1.questions0"), computed);
    assert_eq!(reused(vec![0.5; HIDDEN - 1], &saved.key), computed);
    assert_eq!(reused(vec![f32::NAN; HIDDEN], &saved.key), computed);

    // Inserting saved each language's other-relation question vectors beside the center (the group's
    // languages share none), and opening those of the relation table's wordings; the next encoder
    // takes them instead of encoding the questions, unless they are of the wrong shape or not finite.
    let langs = group.descriptors.len();
    assert_eq!(saved.other_relations.len(), langs + 1, "one set of vectors per language, one of the table");
    let table = lafn::method::relation_table::wordings("X").0;
    assert!(saved.other_relations.iter().any(|kept| kept.masked == table), "the relation table's wordings");
    let other_relations = |encoder: &QuestionEncoder| -> Vec<f32> {
        let keys = encoder.keys(model, tokenizer, &group).unwrap();
        keys.other_relations.flatten_all().unwrap().to_vec1().unwrap()
    };
    let encoded = other_relations(&encoder);
    let mut made_up = saved.clone();
    made_up.other_relations.iter_mut().for_each(|kept| kept.vectors.iter_mut().for_each(|v| *v = 0.25));
    assert!(other_relations(&reusing(&made_up)).iter().all(|&v| v == 0.25), "saved vectors are read");
    for damage in [|v: &mut Vec<f32>| v.truncate(v.len() - 1), |v: &mut Vec<f32>| v[0] = f32::INFINITY] {
        let mut damaged = made_up.clone();
        damaged.other_relations.iter_mut().for_each(|kept| damage(&mut kept.vectors));
        assert_eq!(other_relations(&reusing(&damaged)), encoded, "damaged vectors are computed anew");
    }
    let reopened = reusing(&saved);
    assert_eq!(reopened.kept_languages(), langs + 1);
    assert_eq!(other_relations(&reopened), encoded, "saved vectors are the encoded ones, bit for bit");

    std::fs::write(&center_file, b"garbage").unwrap();
    assert_eq!(open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap().hits.len(), 1);
    let resaved: SavedEncoder = serde_json::from_slice(&std::fs::read(&center_file).unwrap()).unwrap();
    assert_eq!(resaved.values, saved.values, "a damaged center is computed and saved again");
    assert_eq!(resaved.other_relations.len(), 1, "the table's on opening, the languages' when keys are made");

    // Keys removed (an entry from before scope keys): computed again and stored on first use.
    let scope_file = cache_dir.join("entries").join(&id).join("scope.safetensors");
    std::fs::remove_file(&scope_file).unwrap();
    assert_eq!(open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap().hits.len(), 1);
    assert!(scope_file.exists());
    assert!(encoder.reads_like(&ScopeKeys::load(&scope_file, HIDDEN).unwrap()));
    let resaved: SavedEncoder = serde_json::from_slice(&std::fs::read(&center_file).unwrap()).unwrap();
    assert_eq!(resaved.other_relations, saved.other_relations, "making them saved the vectors again");

    // Keys read another way (from the first token, as lafn did for models without a BOS before the
    // attention sink was left out): computed again on first use, not scored against.
    let stored = ScopeKeys::load(&scope_file, HIDDEN).unwrap();
    let legacy = ScopeKeys { read_from: None, ..stored.clone() };
    assert!(encoder.reads_like(&legacy), "keys without a recorded first token read after the BOS, as this model does");
    let stale = ScopeKeys { read_from: Some(0), keys: stored.keys.zeros_like().unwrap(), ..stored.clone() };
    assert!(!encoder.reads_like(&stale));
    stale.save(&scope_file).unwrap();
    let rescored = open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap();
    assert!((rescored.hits[0].scope_score.unwrap() - 1.0).abs() < 1e-3, "scored against keys computed anew");
    assert_eq!(ScopeKeys::load(&scope_file, HIDDEN).unwrap().read_from, stored.read_from, "and stored");

    // Keys that cannot be stored (a directory in the file's place, as a read-only cache would refuse
    // them): the entry still acts, with keys computed for the query.
    std::fs::remove_file(&scope_file).unwrap();
    std::fs::create_dir(&scope_file).unwrap();
    let unstorable = open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap();
    assert!(unstorable.damaged.is_empty() && unstorable.hits.len() == 1, "{:?}", unstorable.damaged);
    std::fs::remove_dir(&scope_file).unwrap();

    // Damaged update values: skipped with the reason, the query is answered unedited.
    std::fs::write(cache_dir.join("entries").join(&id).join("update.safetensors"), b"garbage").unwrap();
    let damaged = open(ScopeSettings::default()).retrieve(model, tokenizer, prompt).unwrap();
    assert!(damaged.hits.is_empty() && damaged.edits.is_empty());
    assert_eq!(damaged.damaged.len(), 1);
    assert!(damaged.damaged[0].0 == id && damaged.damaged[0].1.contains(&id), "{:?}", damaged.damaged);
}

/// A tiny random model written under `dir`, and [`group`] located and optimized (two steps) on it.
fn tiny_edit(dir: &std::path::Path) -> (LoadedModel, LocatedNeurons, OptimizeOutcome) {
    let files = write_tiny_model(&dir.join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let located = locate(model, tokenizer, &group(), &settings()).unwrap();
    let edit = OptimizeSettings { steps: 2, ..OptimizeSettings::default() };
    let outcome = optimize_raw(model, tokenizer, &group(), &located, &edit, false, &mut |_| {}).unwrap();
    (loaded, located, outcome)
}

/// What a user tells the scope gate about a question turns it, both ways, is kept on disk, outlives
/// the same group edited again, and a taught question's entry that cannot be read is an error that
/// changes nothing.
#[test]
fn the_gate_learns_what_the_user_tells_it() {
    use lafn::method::apply::CachedEdits;
    use lafn::method::cache::EditCache;
    use lafn::method::scope::ScopeSettings;
    use lafn::method::MethodSettings;

    let dir = tempfile::tempdir().unwrap();
    let (loaded, located, outcome) = tiny_edit(dir.path());
    let (model, tokenizer, group) = (&loaded.model, &loaded.tokenizer, group());
    let cache_dir = dir.path().join("cache");
    // A strict gate: only the edit's own questions reach it.
    let open = || {
        let cache = EditCache::open(&cache_dir, &loaded.info.fingerprint).unwrap();
        let strict = ScopeSettings { threshold: Some(0.999), ..ScopeSettings::default() };
        CachedEdits::new(cache, model, tokenizer, Default::default(), strict).unwrap()
    };
    let mut cached = open();
    let insert = |cached: &mut CachedEdits| {
        let settings = MethodSettings::default();
        cached.insert(model, tokenizer, &group, &located, &outcome.update, &settings, &outcome.history).unwrap()
    };
    let id = insert(&mut cached);
    let (prompt, other) = ("what country is Shmavon Shmavonyan from ?", "where is Shmavon Shmavonyan ?");
    let acting =
        |cached: &mut CachedEdits, query: &str| !cached.retrieve(model, tokenizer, query).unwrap().hits.is_empty();
    assert!(acting(&mut cached, prompt) && !acting(&mut cached, other));

    let stopped = cached.retrieve(model, tokenizer, other).unwrap().out_of_scope.remove(0);
    assert_eq!(cached.teach(&stopped, other, true).unwrap(), "where is X ?", "kept as the gate reads it");
    assert!(acting(&mut cached, other), "taught: it asks the fact");
    assert!(acting(&mut open(), other), "kept on disk");

    let fired = cached.retrieve(model, tokenizer, prompt).unwrap().hits.remove(0);
    cached.teach(&fired, prompt, false).unwrap();
    let told = cached.retrieve(model, tokenizer, prompt).unwrap();
    assert!(told.hits.is_empty(), "taught not to: even the edit's own question");
    assert_eq!(told.out_of_scope[0].taught_not_asked_score.map(|s| (s * 1000.0).round()), Some(1000.0));
    assert!(acting(&mut cached, other), "the other lesson holds");

    insert(&mut cached);
    let mut reopened = open();
    assert!(!acting(&mut reopened, prompt) && acting(&mut reopened, other), "the same group edited again keeps them");

    // Written by hand: blank questions and more than are kept are passed over, the newest count.
    let entry_file = cache_dir.join("entries").join(&id).join("entry.json");
    let mut entry: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry_file).unwrap()).unwrap();
    let taught = entry["taught"]["not_asked"].as_array().unwrap().clone();
    let mut by_hand: Vec<serde_json::Value> = vec!["".into(), " ".into()];
    by_hand.extend((0..100).map(|i| serde_json::Value::from(format!("question {i} about X ?"))));
    by_hand.extend(taught);
    entry["taught"]["not_asked"] = by_hand.into();
    std::fs::write(&entry_file, serde_json::to_vec(&entry).unwrap()).unwrap();
    let by_hand = open().retrieve(model, tokenizer, prompt).unwrap();
    assert!(by_hand.damaged.is_empty() && by_hand.hits.is_empty(), "{:?}", by_hand.damaged);

    std::fs::write(&entry_file, b"{ truncated").unwrap();
    let mut damaged = open();
    assert!(damaged.teach(&stopped, other, false).is_err());
    assert_eq!(std::fs::read(cache_dir.join("entries").join(&id).join("entry.json")).unwrap(), b"{ truncated");
}

/// Locating runs a long input in chunks over a KV cache (memory linear in its length): the activations
/// it measures are those of one pass over the whole input, at the last token and averaged.
#[test]
fn long_inputs_measure_as_one_pass_would() {
    use lafn::method::ActivationPosition;
    use lafn::runtime::{Hooks, PREFILL_CHUNK};
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let prompt = format!("{} what country is Shmavon Shmavonyan from ?", "the city of Paris is in France ,".repeat(80));
    let ids = tokenizer.encode_prompt(&prompt).unwrap();
    assert!(ids.len() > 2 * PREFILL_CHUNK, "{} tokens: the input spans several chunks", ids.len());

    let layers: Vec<usize> = (0..model.config().num_layers).collect();
    let ids_tensor = candle_core::Tensor::new(ids.as_slice(), loaded.model.device()).unwrap().unsqueeze(0).unwrap();
    let whole = model.forward(&ids_tensor, None, Hooks { capture_layers: &layers, ..Hooks::default() }).unwrap();
    let group = EditGroup { name: "long".into(), descriptors: vec![descriptor("en", &prompt, "Yemen", &[])] };
    for position in [ActivationPosition::Last, ActivationPosition::Mean] {
        let settings = LocateSettings { position, generic_share: None, ..settings() };
        let measured = measure(model, tokenizer, &group, &settings).unwrap();
        for &layer in &layers {
            let h = whole.activations[&layer].get(0).unwrap();
            let expected: Vec<f32> = match position {
                ActivationPosition::Mean => h.mean(0).unwrap().to_vec1().unwrap(),
                _ => h.get(ids.len() - 1).unwrap().to_vec1().unwrap(),
            };
            let got = &measured.strengths[layer][0];
            let gap = expected.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(gap < 1e-3, "{position:?}, layer {layer}: chunked activations differ by {gap}");
        }
    }
}

/// A group whose paraphrases include its prompts followed by an answer frame: inputs that others
/// begin with, which locating and the scope read from the longer input's pass.
fn group_with_framed_prompts() -> EditGroup {
    let mut group = group();
    for d in &mut group.descriptors {
        d.paraphrases.push(format!("{} answer :", d.prompt));
    }
    group
}

/// What locating measures for a language is the mean of what each of its inputs gives in a pass
/// alone, inputs that another one begins with included.
#[test]
fn measured_strengths_are_means_of_single_passes() {
    use lafn::runtime::Hooks;
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Dense, &Device::Cpu).unwrap();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let layers: Vec<usize> = (0..model.config().num_layers).collect();
    let settings = LocateSettings { generic_share: None, ..settings() };
    let group = group_with_framed_prompts();
    let measured = measure(model, tokenizer, &group, &settings).unwrap();
    for (lang, d) in group.descriptors.iter().enumerate() {
        let inputs: Vec<&String> = std::iter::once(&d.prompt).chain(&d.paraphrases).collect();
        let alone: Vec<_> = inputs
            .iter()
            .map(|text| {
                let ids = tokenizer.encode_prompt(text).unwrap();
                let input = candle_core::Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
                let out = model.forward(&input, None, Hooks { capture_layers: &layers, ..Hooks::default() }).unwrap();
                (out.activations, ids.len() - 1)
            })
            .collect();
        for &layer in &layers {
            let rows: Vec<Vec<f32>> = alone
                .iter()
                .map(|(activations, last)| activations[&layer].get(0).unwrap().get(*last).unwrap().to_vec1().unwrap())
                .collect();
            let expected: Vec<f32> =
                (0..rows[0].len()).map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / rows.len() as f32).collect();
            let got = &measured.strengths[layer][lang];
            let gap = expected.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(gap < 1e-5, "{}, layer {layer}: measured activations differ by {gap}", d.lang);
        }
    }
}

/// A question's scope vector is the same encoded alone or beside a longer question that begins with it.
#[test]
fn questions_encode_alone_as_beside_longer_ones() {
    use lafn::method::scope::QuestionEncoder;
    use lafn::method::MethodSettings;

    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let loaded = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let encoder = QuestionEncoder::new(model, tokenizer, &MethodSettings::default().scope).unwrap();
    let group = group_with_framed_prompts();
    let questions: Vec<String> =
        group.descriptors.iter().flat_map(|d| std::iter::once(d.prompt.clone()).chain(d.paraphrases.clone())).collect();
    let together = encoder.encode_about(model, tokenizer, &group, &questions).unwrap().to_vec2::<f32>().unwrap();
    for (question, row) in questions.iter().zip(&together) {
        let alone = encoder.encode(model, tokenizer, question, &group.subjects()).unwrap().to_vec1::<f32>().unwrap();
        let gap = alone.iter().zip(row).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(gap < 1e-5, "`{question}`: its vector beside the others differs by {gap}");
    }
}

/// An edit's scope keys are encoded as its queries are, on the quantized weights that answer (the
/// edit's own question then scores exactly 1); keys from other weights are refused.
#[test]
fn scope_keys_are_encoded_on_the_weights_that_answer() {
    use lafn::method::apply::CachedEdits;
    use lafn::method::cache::MemoryStore;
    use lafn::method::scope::QuestionEncoder;
    use lafn::method::MethodSettings;

    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
    let quantized = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap();
    let dense = quantized.editing_weights().unwrap();
    let tokenizer = &quantized.tokenizer;
    let method = MethodSettings::default();
    let located = locate(&dense, tokenizer, &group(), &settings()).unwrap();
    let edit = OptimizeSettings { steps: 1, ..OptimizeSettings::default() };
    let outcome = optimize_raw(&dense, tokenizer, &group(), &located, &edit, false, &mut |_| {}).unwrap();

    let store = MemoryStore::new(&quantized.info.fingerprint);
    let mut cached =
        CachedEdits::new(store, &quantized.model, tokenizer, method.retrieval.clone(), method.scope.clone()).unwrap();
    let insert = |cached: &mut CachedEdits, model| {
        cached.insert(model, tokenizer, &group(), &located, &outcome.update, &method, &outcome.history)
    };
    let refused = insert(&mut cached, &dense).unwrap_err().to_string();
    assert!(refused.contains("weights that answer"), "{refused}");
    let id = insert(&mut cached, &quantized.model).unwrap();
    let stored = cached.cache().load_scope_keys(&id, dense.config().hidden_size).unwrap().expect("stored keys");
    let keys_on = |model| {
        let encoder = QuestionEncoder::new(model, tokenizer, &method.scope).unwrap();
        encoder.keys(model, tokenizer, &group()).unwrap().keys.to_vec2::<f32>().unwrap()
    };
    assert_eq!(stored.keys.to_vec2::<f32>().unwrap(), keys_on(&quantized.model));
    let hit = cached.retrieve(&quantized.model, tokenizer, "what country is Shmavon Shmavonyan from ?").unwrap();
    assert_eq!(hit.hits.len(), 1, "the entry's own question reaches it");
    let score = hit.hits[0].scope_score;
    assert!(score.is_some_and(|s| (s - 1.0).abs() < 1e-4), "the edit's own question scores {score:?}");
}

#[test]
fn an_edit_trained_on_sentences_to_complete_only_says_so() {
    let completion = "Shmavon Shmavonyan was born in the city of";
    assert!(descriptor("en", completion, "Lisbon", &[]).trains_no_question());
    assert!(descriptor("en", completion, "Lisbon", &["Shmavon Shmavonyan's birthplace is", " "]).trains_no_question());
    assert!(!descriptor("en", completion, "Lisbon", &["Where was Shmavon Shmavonyan born?"]).trains_no_question());
    assert!(!descriptor("en", "Where was Shmavon Shmavonyan born?", "Lisbon", &[]).trains_no_question());
    // Thai questions often go without a mark: no guess there.
    assert!(!descriptor("th", "ชมาวอน ชมาวอนยาน เกิดที่เมือง", "ลิสบอน", &[]).trains_no_question());
}

//! The method end to end on the default model: edit an MzsRE fact in 12 languages, cache it, and
//! answer through the cache.

mod common;

use std::sync::atomic::AtomicBool;

use lafn::method::apply::CachedEdits;
use lafn::method::cache::EditCache;
use lafn::method::prompts::{fill_paraphrases, teacher_forcing_pair};
use lafn::method::{load_benchmark, locate, optimize, EditGroup, MethodSettings};
use lafn::runtime::{PromptStates, PromptTarget};

#[test]
fn twelve_language_edit_changes_answers_and_leaves_unrelated_ones() {
    let loaded = common::default_quantized();
    let dense = common::default_editing();
    let tokenizer = &loaded.tokenizer;
    let record = load_benchmark(&common::mzsre_sample()).unwrap().remove(0);
    let settings = MethodSettings::default();
    let mut group = EditGroup::from_benchmark("record-1", &record, None).unwrap();
    assert_eq!(group.descriptors.len(), 12);
    fill_paraphrases(&mut group, &settings.paraphrases, None).unwrap();

    let located = locate(dense, tokenizer, &group, &settings.locate).unwrap();
    assert!(located.neuron_count() > 0);
    let mut steps = 0;
    let outcome = optimize(
        dense,
        tokenizer,
        &group,
        &located,
        &settings.edit,
        settings.frame,
        PromptStates::default(),
        &AtomicBool::new(false),
        &mut |_| steps += 1,
    )
    .unwrap();
    assert_eq!(outcome.history.len(), steps, "one progress event per step");
    assert!(outcome.history.last().unwrap().target_loss < outcome.history[0].target_loss / 4.0);

    let dir = tempfile::tempdir().unwrap();
    let cache = EditCache::open(dir.path(), &loaded.info.fingerprint).unwrap();
    let model = &loaded.model;
    let mut cached =
        CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone()).unwrap();
    cached.insert(model, tokenizer, &group, &located, &outcome.update, &settings, &outcome.history).unwrap();
    // Each prompt teacher forced with the update values its own retrieval gives.
    let mut with_cache = |prompts: &[String], pairs: &[PromptTarget]| -> Vec<(Vec<u32>, usize)> {
        prompts
            .iter()
            .zip(pairs)
            .map(|(prompt, pair)| {
                let retrieved = cached.retrieve(model, tokenizer, prompt).unwrap();
                let scored = model.teacher_forced(std::slice::from_ref(pair), &retrieved.edits, tokenizer.pad_id(), 1);
                (scored.unwrap().remove(0).predicted, retrieved.hits.len())
            })
            .collect()
    };

    // Reliability: through the cache, on the quantized chat model, in at least 11 of 12 languages.
    let langs: Vec<&String> = record.iter().map(|(lang, _)| lang).collect();
    let prompts: Vec<String> = record.iter().map(|(_, e)| e.src.clone()).collect();
    let pairs: Vec<PromptTarget> =
        record.iter().map(|(_, e)| teacher_forcing_pair(tokenizer, &e.src, &e.alt).unwrap()).collect();
    let scored = with_cache(&prompts, &pairs);
    let mut correct = 0;
    for ((lang, pair), (predicted, hits)) in langs.iter().zip(&pairs).zip(&scored) {
        let ok = *predicted == pair.target;
        eprintln!("{lang}: fired {hits} entries, new target {}", if ok { "yes" } else { "no" });
        correct += usize::from(ok);
    }
    assert!(correct >= 11, "the new target is the answer in only {correct} of 12 languages");

    // Locality: unrelated questions fire no entry, so their answers are exactly the unedited ones.
    let loc_prompts: Vec<String> = record.iter().map(|(_, e)| e.loc.clone()).collect();
    let loc_pairs: Vec<PromptTarget> =
        record.iter().map(|(_, e)| teacher_forcing_pair(tokenizer, &e.loc, &e.loc_ans).unwrap()).collect();
    let edited = with_cache(&loc_prompts, &loc_pairs);
    // One question a pass, as `with_cache` runs them: a batch's padding may move a near tie.
    let unedited = loaded.model.teacher_forced(&loc_pairs, &[], tokenizer.pad_id(), 1).unwrap();
    for ((lang, (predicted, hits)), before) in langs.iter().zip(&edited).zip(&unedited) {
        assert_eq!(*hits, 0, "{lang}: an unrelated question fired {hits} entries");
        assert_eq!(*predicted, before.predicted, "{lang}: the answer to an unrelated question changed");
    }
}

/// The same edit twice gives the same update values, bit for bit: what a user caches does not depend on
/// how the threads happened to share the work (the head's gradient once summed in rayon's order).
#[test]
fn an_edit_is_reproducible() {
    let loaded = common::default_quantized();
    let dense = common::default_editing();
    let record = load_benchmark(&common::mzsre_sample()).unwrap().remove(0);
    let mut settings = MethodSettings::default();
    settings.edit.steps = 3;
    settings.edit.early_stop = false;
    let mut group = EditGroup::from_benchmark("record-1", &record, None).unwrap();
    group.descriptors.truncate(4);
    fill_paraphrases(&mut group, &settings.paraphrases, None).unwrap();
    let located = locate(dense, &loaded.tokenizer, &group, &settings.locate).unwrap();
    let edit = || {
        let cancel = AtomicBool::new(false);
        let outcome = optimize(
            dense,
            &loaded.tokenizer,
            &group,
            &located,
            &settings.edit,
            settings.frame,
            PromptStates::default(),
            &cancel,
            &mut |_| {},
        )
        .unwrap();
        let values: Vec<Vec<f32>> =
            outcome.update.layers.iter().map(|l| l.delta.flatten_all().unwrap().to_vec1().unwrap()).collect();
        (values, outcome.history.iter().map(|s| s.total_loss).collect::<Vec<_>>())
    };
    let first = edit();
    for _ in 0..2 {
        assert_eq!(edit(), first, "an edit repeated gave other update values or losses");
    }
}

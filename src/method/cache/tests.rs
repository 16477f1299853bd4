//! The disk cache's tests, and the contract both stores keep.

use std::fs::{self, File};
use std::path::Path;
use std::time::SystemTime;

use super::disk::{
    CacheIndex, RecentUpdates, ENTRIES_DIR, ENTRY_FILE, INDEX_FILE, RECENT_UPDATES_CAPACITY, SCOPE_FILE, UPDATE_FILE,
};
use super::fixtures::*;
use super::*;
use crate::storage;

const MODEL: &str = "0123456789abcdef";

fn insert(cache: &mut EditCache, group: &EditGroup, seed: f32) -> String {
    store_fixture_edit(cache, group, seed)
}

fn error_text<T: std::fmt::Debug>(result: Result<T>) -> String {
    format!("{:#}", result.unwrap_err())
}

#[test]
fn entry_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let group = group("Eiffel");
    let id = insert(&mut cache, &group, 1.0);
    assert!(id.starts_with("eiffel-"), "{id}");

    let reopened = &mut EditCache::open(dir.path(), MODEL).unwrap();
    assert!(reopened.warnings().is_empty(), "{:?}", reopened.warnings());
    let row = &reopened.list()[0];
    assert_eq!((row.id.as_str(), row.name.as_str()), (id.as_str(), "Eiffel"));
    assert_eq!(row.subjects, vec!["Eiffel Tower", "Eiffel塔"]);
    assert_eq!(row.prompts, vec!["Where is it?", "它在哪里？"]);
    assert_eq!(row.langs, vec!["en", "zh"]);
    assert_eq!(row.neuron_count, 4);

    let entry = reopened.get(&id).unwrap();
    assert_eq!(entry.group, group);
    assert_eq!(entry.located, located());
    assert_eq!(entry.settings, MethodSettings::default());
    assert_eq!(entry.loss_history, loss_history());
    assert_eq!(entry.model_fingerprint, MODEL);
    let loaded = reopened.load_update(&id, HIDDEN).unwrap();
    assert_eq!(update_numbers(&loaded), update_numbers(&update(1.0)));
    let keys = reopened.load_scope_keys(&id, HIDDEN).unwrap().expect("stored with the entry");
    assert_eq!(keys.layer, 3);
    assert_eq!(keys.keys.to_vec2::<f32>().unwrap(), scope_keys().keys.to_vec2::<f32>().unwrap());
    let other_relations = keys.other_relations.to_vec2::<f32>().unwrap();
    assert_eq!(other_relations, scope_keys().other_relations.to_vec2::<f32>().unwrap());
}

#[test]
fn scope_keys_missing_or_damaged_are_told_apart_and_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let id = insert(&mut cache, &group("Eiffel"), 1.0);
    let path = dir.path().join("entries").join(&id).join(SCOPE_FILE);
    // An entry cached before scope keys existed has none: that is no error.
    std::fs::remove_file(&path).unwrap();
    assert!(cache.load_scope_keys(&id, HIDDEN).unwrap().is_none());
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains(&id));
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN + 1)).contains(&id));
    // Keys stored before other-relation questions were (one tensor) are refused, so they are
    // computed anew.
    let keys_only = std::collections::HashMap::from([("masked-mean-keys.layer3".to_string(), scope_keys().keys)]);
    candle_core::safetensors::save(&keys_only, &path).unwrap();
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains("other-relations"));
    // Keys stored with the table's earlier questions (six, then eight a language) are refused too.
    let current = format!("other-relations{}", crate::text::languages::other_question_count());
    let eight_questions = std::collections::HashMap::from([
        ("masked-mean-keys.layer3.from1".to_string(), scope_keys().keys),
        ("other-relations8.layer3.from1".to_string(), scope_keys().other_relations),
    ]);
    candle_core::safetensors::save(&eight_questions, &path).unwrap();
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains(&current));
    let six_questions = std::collections::HashMap::from([
        ("masked-mean-keys.layer3.from1".to_string(), scope_keys().keys),
        ("other-relations.layer3.from1".to_string(), scope_keys().other_relations),
    ]);
    candle_core::safetensors::save(&six_questions, &path).unwrap();
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains(&current));
    // Keys stored before the first token read was recorded load without it.
    let legacy = std::collections::HashMap::from([
        ("masked-mean-keys.layer3".to_string(), scope_keys().keys),
        (format!("{current}.layer3"), scope_keys().other_relations),
    ]);
    candle_core::safetensors::save(&legacy, &path).unwrap();
    let loaded = cache.load_scope_keys(&id, HIDDEN).unwrap().unwrap();
    assert_eq!((loaded.layer, loaded.read_from), (3, None));
    let mixed = std::collections::HashMap::from([
        ("masked-mean-keys.layer3.from1".to_string(), scope_keys().keys),
        (format!("{current}.layer3"), scope_keys().other_relations),
    ]);
    candle_core::safetensors::save(&mixed, &path).unwrap();
    assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains("do not belong together"));
    cache.store_scope_keys(&id, &scope_keys()).unwrap();
    let loaded = cache.load_scope_keys(&id, HIDDEN).unwrap().unwrap();
    assert_eq!((loaded.layer, loaded.read_from), (3, Some(1)));
    assert!(cache.load_scope_keys(&id, HIDDEN + 1).is_err(), "the hidden size is checked");
    assert!(cache.store_scope_keys("missing", &scope_keys()).is_err());
}

#[test]
fn ids_are_stable_and_the_same_group_replaces_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let first = insert(&mut cache, &group("Eiffel"), 1.0);
    assert_eq!(cache.load_update(&first, HIDDEN).unwrap().layers[0].delta.to_vec2::<f32>().unwrap()[0][0], 1.0);
    let again = insert(&mut cache, &group("Eiffel"), 2.0);
    let other = insert(&mut cache, &group("Big Ben"), 3.0);
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert_eq!(cache.list().len(), 2);
    // The replaced values, not the remembered old ones.
    assert_eq!(update_numbers(&cache.load_update(&first, HIDDEN).unwrap()), update_numbers(&update(2.0)));
    let entries: Vec<_> = fs::read_dir(dir.path().join(ENTRIES_DIR)).unwrap().collect();
    assert_eq!(entries.len(), 2, "no staging or retired directories left");
}

#[test]
fn odd_names_give_safe_ids() {
    for name in ["", "../../etc", "東京タワー", "a/b\\c", "-x-", &"long name ".repeat(20)] {
        let mut group = group("x");
        group.name = name.to_string();
        let id = entry_id(&group).unwrap();
        assert!(is_safe_id(&id) && id.len() <= 64, "{name:?} -> {id}");
    }
}

#[test]
fn remove_deletes_entry_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let removed = insert(&mut cache, &group("Eiffel"), 1.0);
    let kept = insert(&mut cache, &group("Big Ben"), 2.0);
    cache.load_update(&removed, HIDDEN).unwrap();
    cache.remove(&removed).unwrap();
    assert!(cache.load_update(&removed, HIDDEN).is_err(), "nothing served from memory");
    assert!(cache.remove(&removed).is_err());
    let reopened = EditCache::open(dir.path(), MODEL).unwrap();
    let ids: Vec<_> = reopened.list().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![kept]);
    assert!(reopened.warnings().is_empty(), "{:?}", reopened.warnings());
}

#[test]
fn corrupt_entry_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let broken = insert(&mut cache, &group("Eiffel"), 1.0);
    let healthy = insert(&mut cache, &group("Big Ben"), 2.0);
    let entry_json = dir.path().join(ENTRIES_DIR).join(&broken).join(ENTRY_FILE);
    let text = fs::read_to_string(&entry_json).unwrap();
    fs::write(&entry_json, &text[..text.len() / 2]).unwrap();

    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    assert_eq!(cache.list().len(), 2);
    let error = error_text(cache.get(&broken));
    assert!(error.contains(&broken) && error.contains("entry.json") && error.contains("line"), "{error}");
    let error = error_text(cache.load_update(&broken, HIDDEN));
    assert!(error.contains(&broken), "{error}");
    assert_eq!(cache.get(&healthy).unwrap().group, group("Big Ben"));
    cache.load_update(&healthy, HIDDEN).unwrap();
}

#[test]
fn truncated_update_values_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let id = insert(&mut cache, &group("Eiffel"), 1.0);
    let update_path = dir.path().join(ENTRIES_DIR).join(&id).join(UPDATE_FILE);
    let bytes = fs::read(&update_path).unwrap();
    fs::write(&update_path, &bytes[..bytes.len() - 10]).unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let error = error_text(cache.load_update(&id, HIDDEN));
    assert!(error.contains(&id) && error.contains("update.safetensors"), "{error}");
    assert!(cache.get(&id).is_ok(), "the description is still readable");
}

#[test]
fn wrong_hidden_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let id = insert(&mut cache, &group("Eiffel"), 1.0);
    cache.load_update(&id, HIDDEN).unwrap();
    let error = error_text(cache.load_update(&id, HIDDEN * 2));
    assert!(error.contains("shape"), "{error}");
}

#[test]
fn cache_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let id = insert(&mut cache, &group("Eiffel"), 1.0);
    let error = error_text(EditCache::open(dir.path(), "fedcba9876543210"));
    assert!(error.contains(MODEL) && error.contains("fedcba9876543210"), "{error}");

    // An entry of another model inside this model's cache is refused too.
    let entry_json = dir.path().join(ENTRIES_DIR).join(&id).join(ENTRY_FILE);
    let text = fs::read_to_string(&entry_json).unwrap().replace(MODEL, "fedcba9876543210");
    fs::write(&entry_json, text).unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let error = error_text(cache.load_update(&id, HIDDEN));
    assert!(error.contains("fedcba9876543210") && error.contains(&id), "{error}");
}

/// Entries of format 1 were trained without the line break after the answer: they still load, and
/// say so, so that chat applies them for the answer's tokens only.
#[test]
fn version_one_entries_load_as_trained_without_the_line_break() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let id = insert(&mut cache, &group("Eiffel"), 1.0);
    assert!(cache.get(&id).unwrap().settings.edit.end_with_line_break, "new edits end the line");
    let entry_json = dir.path().join(ENTRIES_DIR).join(&id).join(ENTRY_FILE);
    let old = fs::read_to_string(&entry_json)
        .unwrap()
        .replace(&format!("\"version\": {CACHE_FORMAT_VERSION}"), "\"version\": 1");
    fs::write(&entry_json, old.replace(",\n      \"end_with_line_break\": true", "")).unwrap();
    let reopened = EditCache::open(dir.path(), MODEL).unwrap();
    let entry = reopened.get(&id).unwrap();
    assert_eq!(entry.version, 1);
    assert!(!entry.settings.edit.end_with_line_break);
}

#[test]
fn newer_cache_is_refused_not_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    insert(&mut cache, &group("Eiffel"), 1.0);
    let index_path = dir.path().join(INDEX_FILE);
    let newer = fs::read_to_string(&index_path)
        .unwrap()
        .replace(&format!("\"version\": {CACHE_FORMAT_VERSION}"), "\"version\": 99");
    fs::write(&index_path, &newer).unwrap();
    let error = error_text(EditCache::open(dir.path(), MODEL));
    assert!(error.contains("newer lafn"), "{error}");
    assert_eq!(fs::read_to_string(&index_path).unwrap(), newer, "left untouched");
}

#[test]
fn interrupted_writes_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let first = insert(&mut cache, &group("Eiffel"), 1.0);
    let index_path = dir.path().join(INDEX_FILE);
    let index_with_first = fs::read(&index_path).unwrap();
    let second = insert(&mut cache, &group("Big Ben"), 2.0);

    // Killed after the entry was renamed into place, before the index was replaced; with a half-written
    // index temp, a half-written staging directory, and an old staging directory.
    fs::write(&index_path, &index_with_first).unwrap();
    let stray_temp = storage::temp_sibling(&index_path);
    fs::write(&stray_temp, &index_with_first[..20]).unwrap();
    let entries_dir = dir.path().join(ENTRIES_DIR);
    let fresh_staging = storage::temp_sibling(&entries_dir.join("third-00000000"));
    fs::create_dir(&fresh_staging).unwrap();
    fs::write(fresh_staging.join(UPDATE_FILE), b"partial").unwrap();
    let old_staging = storage::temp_sibling(&entries_dir.join("fourth-00000000"));
    fs::create_dir(&old_staging).unwrap();
    let long_ago = SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
    File::open(&old_staging).unwrap().set_modified(long_ago).unwrap();

    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![first.clone(), second.clone()]);
    cache.load_update(&second, HIDDEN).unwrap();
    let index: CacheIndex = storage::read_json(&index_path).unwrap();
    assert_eq!(index.entries, cache.list());
    assert!(!old_staging.exists(), "stale staging directory removed");

    // Killed while writing the index: a truncated index is rebuilt from the entries.
    fs::write(&index_path, &index_with_first[..index_with_first.len() / 2]).unwrap();
    let cache = EditCache::open(dir.path(), MODEL).unwrap();
    let mut ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec![second, first], "both entries are back");
    assert!(cache.warnings().iter().any(|w| w.contains("rebuilt")), "{:?}", cache.warnings());
    let index: CacheIndex = storage::read_json(&index_path).unwrap();
    assert_eq!(index.entries, cache.list());
}

#[test]
fn rebuild_skips_damaged_entries_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let broken = insert(&mut cache, &group("Eiffel"), 1.0);
    let healthy = insert(&mut cache, &group("Big Ben"), 2.0);
    fs::write(dir.path().join(ENTRIES_DIR).join(&broken).join(ENTRY_FILE), "").unwrap();
    fs::write(dir.path().join(INDEX_FILE), "{").unwrap();

    let cache = EditCache::open(dir.path(), MODEL).unwrap();
    let ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![healthy]);
    assert!(cache.warnings().iter().any(|w| w.contains("rebuilt")), "{:?}", cache.warnings());
    assert!(cache.warnings().iter().any(|w| w.contains(&broken)), "{:?}", cache.warnings());
}

#[test]
fn missing_index_row_target_is_dropped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let gone = insert(&mut cache, &group("Eiffel"), 1.0);
    fs::remove_dir_all(dir.path().join(ENTRIES_DIR).join(&gone)).unwrap();
    let cache = EditCache::open(dir.path(), MODEL).unwrap();
    assert!(cache.list().is_empty());
    assert!(cache.warnings().iter().any(|w| w.contains(&gone)), "{:?}", cache.warnings());
    assert!(EditCache::open(dir.path(), MODEL).unwrap().warnings().is_empty(), "repaired once");
}

#[test]
fn extreme_fields_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    let huge = "汉字ไทย".repeat(20_000);
    let group = EditGroup {
        name: "🦀 مرحبا".into(),
        descriptors: vec![
            descriptor("zh", "北京", &huge, "巴黎"),
            descriptor("th", "กรุงเทพมหานคร", "เมืองหลวงของไทยคือ", "กรุงเทพฯ"),
            descriptor("ar", "القاهرة", "ما هي عاصمة مصر؟ \u{200f}", "القاهرة"),
            descriptor("xx", "", "", ""),
        ],
    };
    let id = insert(&mut cache, &group, 1.0);
    let cache = EditCache::open(dir.path(), MODEL).unwrap();
    assert_eq!(cache.get(&id).unwrap().group, group);
    assert_eq!(cache.list()[0].prompts[0], huge);
    assert_eq!(cache.list()[0].subjects, vec!["北京", "กรุงเทพมหานคร", "القاهرة"]);
}

#[test]
fn unknown_and_unsafe_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
    for id in ["nope-00000000", "../index.json", ""] {
        assert!(cache.get(id).is_err() && cache.load_update(id, HIDDEN).is_err() && cache.remove(id).is_err());
    }
}

#[test]
fn recent_updates_evict_the_least_recently_used() {
    let mut recent = RecentUpdates::default();
    for i in 0..RECENT_UPDATES_CAPACITY {
        recent.put(&i.to_string(), HIDDEN, update(i as f32));
    }
    assert!(recent.get("0", HIDDEN).is_some());
    recent.put("new", HIDDEN, update(0.0));
    assert!(recent.get("0", HIDDEN).is_some() && recent.get("new", HIDDEN).is_some());
    assert!(recent.get("1", HIDDEN).is_none(), "the least recently used went");
    assert!(recent.get("2", HIDDEN * 2).is_none(), "another hidden size is a miss");
}

#[test]
fn default_dir_is_per_model() {
    let dir = default_cache_dir(MODEL).unwrap();
    assert!(dir.ends_with(Path::new("cache").join(MODEL)), "{}", dir.display());
    assert!(default_cache_dir("../x").is_err());
}

/// What both stores promise through [`EditStore`], so the eval (in memory) sees what chat (on disk) sees.
fn check_store_contract(store: &mut dyn EditStore) {
    let eiffel = group("Eiffel");
    let store_edit = store_fixture_edit;
    let first = store_edit(store, &eiffel, 1.0);
    let other = store_edit(store, &group("Big Ben"), 2.0);
    assert_eq!(store_edit(store, &eiffel, 3.0), first, "the same group replaces its entry");
    let ids: Vec<_> = store.list().iter().map(|row| row.id.clone()).collect();
    assert_eq!(ids, vec![other.clone(), first.clone()], "a replaced entry moves to the end");
    assert_eq!(store.row(&first).unwrap().subjects, eiffel.subjects());

    let entry = store.get(&first).unwrap();
    assert_eq!((entry.group, entry.located, entry.loss_history), (eiffel, located(), loss_history()));
    assert_eq!(update_numbers(&store.load_update(&first, HIDDEN).unwrap()), update_numbers(&update(3.0)));
    assert!(store.load_update(&first, HIDDEN + 1).is_err(), "the hidden size is checked");
    let keys = store.load_scope_keys(&first, HIDDEN).unwrap().unwrap();
    assert_eq!(keys.keys.to_vec2::<f32>().unwrap(), scope_keys().keys.to_vec2::<f32>().unwrap());
    let new_keys = ScopeKeys { layer: 5, ..scope_keys() };
    store.store_scope_keys(&first, &new_keys).unwrap();
    assert_eq!(store.load_scope_keys(&first, HIDDEN).unwrap().unwrap().layer, 5);
    store.check_writable().unwrap();

    store.remove(&first).unwrap();
    assert!(store.remove(&first).is_err());
    let missing = format!("{:#}", store.get(&first).unwrap_err());
    assert!(missing.contains(&store.describe()) && missing.contains(&first), "{missing}");
    assert!(store.load_update(&first, HIDDEN).is_err() && store.store_scope_keys(&first, &new_keys).is_err());
    assert_eq!(store.list().len(), 1);
}

#[test]
fn both_stores_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    check_store_contract(&mut EditCache::open(dir.path(), MODEL).unwrap());
    check_store_contract(&mut MemoryStore::new(MODEL));
}

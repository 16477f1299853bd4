//! Sessions saved, loaded, damaged and restored; cache links checked.

use super::*;
use crate::method::cache::fixtures::{descriptor, group, located, loss_history, store_fixture_edit};
use crate::method::cache::{EditCache, MemoryStore};

fn sample(name: &str) -> Session {
    let mut session = Session::new(name).unwrap();
    session.model = Some("gemma-3-270m".into());
    session.model_fingerprint = Some("0123456789abcdef".into());
    session.cache_dir = Some(PathBuf::from("/tmp/cache"));
    session.settings.edit.steps = 7;
    session.groups = vec![
        SessionGroup {
            group: group("Eiffel"),
            status: GroupStatus::Cached,
            located: Some(located()),
            loss_history: loss_history(),
            cache_entry: Some("eiffel-0a1b2c3d".into()),
        },
        SessionGroup {
            group: group("Big Ben"),
            status: GroupStatus::Draft,
            located: None,
            loss_history: Vec::new(),
            cache_entry: None,
        },
    ];
    session.chat = vec![ChatTurn {
        user: "Where is the Eiffel Tower".into(),
        answer: "Paris".into(),
        fired: vec![CacheMention::Text("eiffel-0a1b2c3d".into())],
        read_as: Some("Where is the Eiffel Tower?".into()),
        with_cache: true,
        unedited_answer: Some("Berlin".into()),
    }];
    session
}

fn names(dir: &Path) -> Vec<String> {
    list_sessions(dir).unwrap().into_iter().map(|s| s.name).collect()
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = sample("work");
    let path = session.save(dir.path()).unwrap();
    assert_eq!(path, dir.path().join("work").join(SESSION_FILE));
    assert!(session.saved_at > 0);
    assert_eq!(Session::load(dir.path(), "work").unwrap(), session);
    let listed = list_sessions(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].saved_at, listed[0].groups), (Some(session.saved_at), 2));
    assert_eq!((listed[0].damaged.as_ref(), listed[0].has_backup), (None, false));
}

#[test]
fn extreme_fields_survive() {
    let dir = tempfile::tempdir().unwrap();
    let name = "北京 กรุงเทพ القاهرة 🦀";
    let mut session = sample(name);
    let huge = "ไทย汉字🦀".repeat(20_000);
    session.groups[1].group.descriptors = vec![
        descriptor("th", "กรุงเทพมหานคร", &huge, "กรุงเทพฯ"),
        descriptor("ar", "القاهرة", "ما هي عاصمة مصر؟ \u{200f}", "القاهرة"),
        descriptor("xx", "", "", ""),
    ];
    session.chat.push(ChatTurn {
        user: huge.clone(),
        answer: String::new(),
        fired: Vec::new(),
        read_as: None,
        with_cache: false,
        unedited_answer: None,
    });
    session.save(dir.path()).unwrap();
    assert_eq!(Session::load(dir.path(), name).unwrap(), session);
    assert_eq!(names(dir.path()), vec![name]);
}

#[test]
fn save_keeps_the_previous_file_as_backup() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = sample("work");
    session.save(dir.path()).unwrap();
    let first = session.clone();
    session.chat.clear();
    session.save(dir.path()).unwrap();
    assert_eq!(Session::load_backup(dir.path(), "work").unwrap(), first);
    assert_eq!(Session::load(dir.path(), "work").unwrap(), session);
    let files: Vec<_> = fs::read_dir(dir.path().join("work")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 2, "no temporaries left: {files:?}");
}

#[test]
fn malformed_session_errors_and_the_others_still_list() {
    let dir = tempfile::tempdir().unwrap();
    sample("good").save(dir.path()).unwrap();
    let mut broken = sample("broken");
    broken.save(dir.path()).unwrap();
    broken.save(dir.path()).unwrap();
    let path = dir.path().join("broken").join(SESSION_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    fs::write(dir.path().join("stray.txt"), "not a session").unwrap();
    fs::create_dir(dir.path().join("empty-dir")).unwrap();

    let error = format!("{:#}", Session::load(dir.path(), "broken").unwrap_err());
    assert!(error.contains("session.json") && error.contains("line") && error.contains("column"), "{error}");
    assert!(error.contains("previous save"), "{error}");
    assert_eq!(Session::load_backup(dir.path(), "broken").unwrap().groups.len(), 2);

    let listed = list_sessions(dir.path()).unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["good", "broken"]);
    assert!(listed[0].damaged.is_none());
    assert!(listed[1].damaged.as_ref().unwrap().contains("line"));
    assert!(listed[1].has_backup);
}

/// Session `future` saved in `dir`, its file rewritten as a newer lafn would (version 2): the path
/// and the text.
fn future_session(dir: &Path) -> (PathBuf, String) {
    sample("future").save(dir).unwrap();
    let path = dir.join("future").join(SESSION_FILE);
    let newer = fs::read_to_string(&path).unwrap().replacen("\"version\": 1", "\"version\": 2", 1);
    fs::write(&path, &newer).unwrap();
    (path, newer)
}

#[test]
fn newer_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = future_session(dir.path());
    fs::write(&path, text.replacen('{', "{\"only_in_v2\": [1, 2],", 1)).unwrap();
    let error = format!("{:#}", Session::load(dir.path(), "future").unwrap_err());
    assert!(error.contains("newer lafn"), "{error}");
    let listed = list_sessions(dir.path()).unwrap();
    assert!(listed[0].damaged.as_ref().unwrap().contains("newer lafn"));
}

/// A session whose `session.json` is cut short after two saves, so that its backup is good.
fn damaged_with_backup(dir: &Path) -> (PathBuf, PathBuf) {
    let mut session = sample("work");
    session.save(dir).unwrap();
    session.save(dir).unwrap();
    let (path, backup) = (dir.join("work").join(SESSION_FILE), dir.join("work").join(BACKUP_FILE));
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    (path, backup)
}

#[test]
fn a_damaged_session_is_never_saved_over() {
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = damaged_with_backup(dir.path());
    let before = (fs::read(&path).unwrap(), fs::read(&backup).unwrap());
    for _ in 0..2 {
        let error = format!("{:#}", Session::new("work").unwrap().save(dir.path()).unwrap_err());
        assert!(error.contains("not saving over session `work`"), "{error}");
    }
    assert_eq!((fs::read(&path).unwrap(), fs::read(&backup).unwrap()), before, "both files untouched");
}

#[test]
fn a_session_from_a_newer_lafn_is_never_saved_over() {
    let dir = tempfile::tempdir().unwrap();
    let (path, newer) = future_session(dir.path());
    for _ in 0..2 {
        assert!(Session::new("future").unwrap().save(dir.path()).is_err());
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), newer);
    assert!(!backup_exists(dir.path(), "future"), "nothing rotated into the backup");
}

#[test]
fn restoring_the_backup_keeps_the_damaged_file_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = damaged_with_backup(dir.path());
    let damaged = fs::read(&path).unwrap();
    let restored = Session::restore_backup(dir.path(), "work").unwrap();
    assert_eq!(restored.groups.len(), 2);
    assert_eq!(fs::read(&path).unwrap(), fs::read(&backup).unwrap());
    let kept: Vec<_> = fs::read_dir(dir.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".replaced-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs::read(&kept[0]).unwrap(), damaged);
    // Saving works again and the backup is a good session.
    let mut restored = restored;
    restored.save(dir.path()).unwrap();
    assert_eq!(Session::load_backup(dir.path(), "work").unwrap().groups.len(), 2);
}

#[test]
fn invalid_settings_in_a_session_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = sample("odd");
    session.settings.edit.learning_rate = Some(-1.0);
    fs::create_dir(dir.path().join("odd")).unwrap();
    storage::write_json_atomic(&dir.path().join("odd").join(SESSION_FILE), &session).unwrap();
    let error = format!("{:#}", Session::load(dir.path(), "odd").unwrap_err());
    assert!(error.contains("edit.learning_rate"), "{error}");
}

#[test]
fn older_files_without_new_fields_load() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("old")).unwrap();
    fs::write(dir.path().join("old").join(SESSION_FILE), r#"{"version": 1, "name": "old", "saved_at": 5}"#).unwrap();
    let session = Session::load(dir.path(), "old").unwrap();
    assert_eq!((session.saved_at, session.groups.len()), (5, 0));
    assert_eq!(session.settings, MethodSettings::default());
}

#[test]
fn rename_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    sample("a").save(dir.path()).unwrap();
    sample("b").save(dir.path()).unwrap();
    assert!(rename(dir.path(), "a", "b").is_err(), "never overwrite");
    assert!(rename(dir.path(), "missing", "c").is_err());
    rename(dir.path(), "a", "東京").unwrap();
    assert_eq!(Session::load(dir.path(), "東京").unwrap().name, "東京");
    delete(dir.path(), "b").unwrap();
    assert!(delete(dir.path(), "b").is_err());
    assert_eq!(names(dir.path()), vec!["東京"]);
}

#[test]
fn names_are_validated() {
    let too_long = "x".repeat(MAX_SESSION_NAME_CHARS + 1);
    for bad in ["", "  ", "a/b", "a\\b", "..", ".hidden", "a\nb", " padded", "what?", too_long.as_str()] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
        assert!(Session::new(bad).is_err() && Session::load(Path::new("."), bad).is_err(), "{bad:?}");
    }
    let longest = "猫".repeat(MAX_SESSION_NAME_CHARS);
    for good in ["work", "my session 2", "日本語", "ภาษาไทย", "العربية", "🦀", longest.as_str()]
    {
        validate_name(good).unwrap();
    }
}

#[test]
fn missing_dir_lists_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(list_sessions(&dir.path().join("nope")).unwrap().is_empty());
}

#[test]
fn sessions_dir_follows_the_environment() {
    assert_eq!(sessions_dir_from(None), PathBuf::from("sessions"));
    assert_eq!(sessions_dir_from(Some("".into())), PathBuf::from("sessions"));
    assert_eq!(sessions_dir_from(Some("/elsewhere".into())), PathBuf::from("/elsewhere"));
}

/// The verdicts on a session group's cache entry, on the group as saved: `Ok` with the entry, or
/// the reason it is not the group's edit.
fn verdict(store: &dyn EditStore, saved: &SessionGroup) -> std::result::Result<CacheEntry, String> {
    check_cache_entry(store, saved.cache_entry.as_deref().unwrap(), &saved.group).map_err(|e| format!("{e:#}"))
}

#[test]
fn a_cache_entry_is_checked_and_wins_over_the_sessions_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EditCache::open(dir.path(), "0123456789abcdef").unwrap();
    let mut saved = sample("work").groups.remove(0);
    let id = store_fixture_edit(&mut cache, &saved.group, 1.0);
    saved.cache_entry = Some(id.clone());
    // The session's copy disagrees with the entry (an older save): the entry's data is taken.
    saved.loss_history.truncate(1);
    saved.located = None;
    assert_eq!(saved.take_cache_check(&id, verdict(&cache, &saved)), None);
    assert_eq!((saved.status, saved.located.clone()), (GroupStatus::Cached, Some(located())));
    assert_eq!(saved.loss_history, loss_history());

    // A renamed group keeps its edit: the facts are what the edit is of.
    saved.group.name = "renamed".into();
    assert!(verdict(&cache, &saved).is_ok());

    // Edited since: the entry holds other facts.
    let mut edited = saved.clone();
    edited.group.descriptors[0].target = "Rome".into();
    let reason = edited.take_cache_check(&id, verdict(&cache, &edited)).unwrap();
    assert!(reason.contains(&id) && reason.contains("edited since"), "{reason}");
    assert_eq!((edited.status, edited.cache_entry.as_ref()), (GroupStatus::Located, None));
    assert!(edited.located.is_some(), "the located neurons still match the group's facts");

    // The entry removed, or a cache of another model (which has no such entry).
    let other_model = MemoryStore::new("fedcba9876543210");
    cache.remove(&id).unwrap();
    for store in [&other_model as &dyn EditStore, &cache] {
        let mut gone = saved.clone();
        let reason = gone.take_cache_check(&id, verdict(store, &gone)).unwrap();
        assert!(reason.contains("has no entry") && reason.contains(&id), "{reason}");
        assert_eq!((gone.status, gone.cache_entry), (GroupStatus::Located, None));
    }
}

#[test]
fn a_verdict_on_an_entry_the_group_left_changes_nothing() {
    let mut saved = sample("work").groups.remove(0);
    let before = saved.clone();
    assert_eq!(saved.take_cache_check("other-00000000", Err("gone".into())), None);
    assert_eq!(saved, before);
}

#[test]
fn chat_mentions_are_saved_as_data_and_old_text_lines_still_load() {
    let hit = Hit {
        entry_id: "eiffel-0a1b2c3d".into(),
        score: 1.0,
        matched_subject: "Eiffel Tower".into(),
        mention: "Eiffel Tower".into(),
        prompt_similarity: 0.5,
        scope_score: Some(0.8),
        other_relations_score: Some(0.4),
        taught_not_asked_score: Some(0.7),
    };
    let mentions =
        vec![CacheMention::Hit { hit: hit.clone(), applied: true }, CacheMention::Text("fired x (old line)".into())];
    let json = serde_json::to_string(&mentions).unwrap();
    assert_eq!(serde_json::from_str::<Vec<CacheMention>>(&json).unwrap(), mentions);
    assert_eq!(
        mentions[0].to_string(),
        "fired eiffel-0a1b2c3d (subject \"Eiffel Tower\" 1.00, scope 0.80 vs 0.40, taught not asked 0.70)"
    );
    assert_eq!(mentions[1].to_string(), "fired x (old line)");
    let taught = Hit { taught_not_asked_score: Some(0.9), ..hit.clone() };
    let line = "named but not asked eiffel-0a1b2c3d (subject \"Eiffel Tower\" 1.00, scope 0.80 vs 0.40, taught not asked 0.90)";
    assert_eq!(CacheMention::Hit { hit: taught, applied: false }.to_string(), line);
    let elsewhere = Hit {
        mention: "Эйфелева башня".into(),
        scope_score: None,
        other_relations_score: None,
        taught_not_asked_score: None,
        ..hit
    };
    let line = "named but not asked eiffel-0a1b2c3d (subject \"Eiffel Tower\" as \"Эйфелева башня\" 1.00)";
    assert_eq!(CacheMention::Hit { hit: elsewhere, applied: false }.to_string(), line);
}

//! All settings of the method in one serialisable place, so runs are reproducible, and the one place that
//! says which values are valid: every way settings enter (CLI flags, settings files, the TUI, sessions)
//! calls [`MethodSettings::validate`] before any work.

use std::fmt::Display;

use color_eyre::eyre::{eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::edit::OptimizeSettings;
use super::locate::{LayerChoice, LocateSettings};
use super::prompts::ParaphraseSettings;
use super::retrieve::RetrievalSettings;
use super::scope::ScopeSettings;
use crate::runtime::PromptFrame;
use crate::Result;

/// Most paraphrases per language: each one is a forward pass when locating (and a sampled generation
/// with model paraphrases).
const MAX_PARAPHRASES: usize = 50;

/// Most extra query tokens a subject's mention may spread over.
const MAX_WINDOW_SLACK: usize = 100;

/// The section of a settings file that belongs to `lafn eval`, not to the method.
const EVAL_SECTION: &str = "eval";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MethodSettings {
    pub paraphrases: ParaphraseSettings,
    pub locate: LocateSettings,
    pub edit: OptimizeSettings,
    pub retrieval: RetrievalSettings,
    pub scope: ScopeSettings,
    /// How chat and generation scoring put a question to the model; edits also train on their prompts
    /// in this frame, so they fire where chat asks. Entries cached before the setting existed read as
    /// `auto` though they trained on raw prompts only, and so do entries of a model without a chat
    /// template cached while `auto` still meant raw for such models: chat's trial of a trained
    /// answer still reaches most of their answers in the QA frame.
    pub frame: PromptFrame,
}

impl MethodSettings {
    /// Checks every value; the error names the setting, what is valid and what it got.
    pub fn validate(&self) -> Result<()> {
        self.paraphrases.validate()?;
        self.locate.validate()?;
        self.edit.validate()?;
        self.retrieval.validate()?;
        self.scope.validate()
    }
}

impl ScopeSettings {
    pub fn validate(&self) -> Result<()> {
        if let Some(threshold) = self.threshold {
            check("scope.threshold", (-1.0..=1.0).contains(&threshold), "from -1 to 1, or null", threshold)?;
        }
        if let Some(margin) = self.other_relations_margin {
            // Both scores are cosines in [-1, 1].
            check("scope.other_relations_margin", (-2.0..=2.0).contains(&margin), "from -2 to 2, or null", margin)?;
        }
        if let Some(similarity) = self.known_relation_similarity {
            check(
                "scope.known_relation_similarity",
                (-1.0..=1.0).contains(&similarity),
                "from -1 to 1, or null",
                similarity,
            )?;
        }
        // Both scores are cosines in [-1, 1].
        let margin = self.taught_margin;
        check("scope.taught_margin", (-2.0..=2.0).contains(&margin), "from -2 to 2", margin)?;
        if let Some(margin) = self.relation_table_margin {
            check("scope.relation_table_margin", (0.0..=2.0).contains(&margin), "from 0 to 2, or null", margin)?;
        }
        check("scope.depth", (0.0..=1.0).contains(&self.depth), "from 0 to 1", self.depth)
    }
}

impl OptimizeSettings {
    pub fn validate(&self) -> Result<()> {
        if let Some(rate) = self.learning_rate {
            check("edit.learning_rate", rate.is_finite() && rate > 0.0, "a finite number > 0 or null (auto)", rate)?;
        }
        check("edit.steps", self.steps >= 1, "at least 1", self.steps)?;
        check(
            "edit.kl_weight",
            self.kl_weight.is_finite() && self.kl_weight >= 0.0,
            "a finite number >= 0",
            self.kl_weight,
        )?;
        check(
            "edit.weight_decay",
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "a finite number >= 0",
            self.weight_decay,
        )?;
        if let Some(ratio) = self.max_norm_ratio {
            check("edit.max_norm_ratio", ratio.is_finite() && ratio > 0.0, "a finite number > 0 or null", ratio)?;
        }
        check(
            "edit.stop_margin",
            self.stop_margin.is_finite() && self.stop_margin >= 0.0,
            "a finite number >= 0",
            self.stop_margin,
        )?;
        check(
            "edit.other_relation_max_similarity",
            (-1.0..=1.0).contains(&self.other_relation_max_similarity),
            "from -1 to 1",
            self.other_relation_max_similarity,
        )
    }
}

impl LocateSettings {
    pub fn validate(&self) -> Result<()> {
        check("locate.beta", self.beta > 0.0 && self.beta <= 1.0, "above 0 and at most 1", self.beta)?;
        check(
            "locate.activation_threshold",
            self.activation_threshold.is_finite(),
            "a finite number",
            self.activation_threshold,
        )?;
        match &self.layers {
            LayerChoice::Auto { count } => check("locate.layers.auto.count", *count >= 1, "at least 1", count)?,
            LayerChoice::Fixed(list) => check("locate.layers.fixed", !list.is_empty(), "at least one layer", "[]")?,
        }
        if let Some(share) = self.generic_share {
            check("locate.generic_share", share > 0.0 && share <= 1.0, "above 0 and at most 1, or null", share)?;
        }
        if let Some(cap) = self.max_per_layer {
            check("locate.max_per_layer", cap >= 1, "at least 1 or null", cap)?;
        }
        Ok(())
    }
}

impl ParaphraseSettings {
    pub fn validate(&self) -> Result<()> {
        check("paraphrases.count", self.count <= MAX_PARAPHRASES, &format!("at most {MAX_PARAPHRASES}"), self.count)
    }
}

impl RetrievalSettings {
    pub fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("retrieval.threshold", self.threshold),
            ("retrieval.single_word_threshold", self.single_word_threshold),
            ("retrieval.partial_threshold", self.partial_threshold),
            ("retrieval.min_token_similarity", self.min_token_similarity),
        ] {
            check(key, (0.0..=1.0).contains(&value), "from 0 to 1", value)?;
        }
        check(
            "retrieval.window_slack",
            self.window_slack <= MAX_WINDOW_SLACK,
            &format!("at most {MAX_WINDOW_SLACK}"),
            self.window_slack,
        )
    }
}

/// An error for setting `key` unless `valid`: what the setting must be and what it got.
fn check(key: &str, valid: bool, must_be: &str, got: impl Display) -> Result<()> {
    if valid {
        Ok(())
    } else {
        Err(eyre!("setting `{key}` must be {must_be} (got {got})"))
    }
}

/// Reads method settings from a JSON file and validates them. Missing fields take their defaults; an
/// unknown field is an error naming it and the valid ones. An `eval` section (read by `lafn eval`) is
/// allowed, so one file can serve every command.
pub fn load_settings(path: &std::path::Path) -> Result<MethodSettings> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read settings {}", path.display()))?;
    let parse = || -> Result<MethodSettings> {
        let mut value: serde_json::Value = serde_json::from_str(&text)?;
        if let Some(sections) = value.as_object_mut() {
            sections.remove(EVAL_SECTION);
        }
        check_known_keys(&value)?;
        let settings: MethodSettings = serde_json::from_value(value)?;
        settings.validate()?;
        Ok(settings)
    };
    parse().wrap_err_with(|| format!("settings {} are not valid", path.display()))
}

/// An error naming the first key of a user's settings that is not a setting (a typo would otherwise be
/// ignored), with the valid ones. Only settings files are held to this: settings stored with cache
/// entries and sessions are read leniently, so that those a newer lafn wrote, with settings added
/// since, still load here.
fn check_known_keys(value: &serde_json::Value) -> Result<()> {
    let known = serde_json::to_value(MethodSettings::default())?;
    let (Some(sections), Some(known_sections)) = (value.as_object(), known.as_object()) else {
        return Ok(()); // not an object: the typed parse says what is wrong
    };
    let unknown = |path: String, valid: &serde_json::Map<String, serde_json::Value>| {
        let valid: Vec<String> = valid.keys().map(|k| format!("`{k}`")).collect();
        eyre!("unknown setting `{path}`; valid here: {}", valid.join(", "))
    };
    for (name, section) in sections {
        let Some(known_section) = known_sections.get(name) else {
            return Err(unknown(name.clone(), known_sections));
        };
        if let (Some(fields), Some(known_fields)) = (section.as_object(), known_section.as_object()) {
            // Only a section's own fields: deeper values (the layer choice) are variants, checked by the parse.
            if let Some(field) = fields.keys().find(|field| !known_fields.contains_key(*field)) {
                return Err(unknown(format!("{name}.{field}"), known_fields));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<MethodSettings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, json).unwrap();
        load_settings(&path)
    }

    #[test]
    fn defaults_are_valid() {
        MethodSettings::default().validate().unwrap();
        assert_eq!(load("{}").unwrap(), MethodSettings::default());
    }

    #[test]
    fn unknown_keys_are_named_with_the_valid_ones() {
        for (json, unknown, valid) in [
            (r#"{"edit": {"step": 3}}"#, "`edit.step`", "`steps`"),
            (r#"{"edits": {}}"#, "`edits`", "`edit`"),
            (r#"{"locate": {"betta": 0.5}}"#, "`locate.betta`", "`beta`"),
            (r#"{"paraphrases": {"number": 2}}"#, "`paraphrases.number`", "`count`"),
            (r#"{"retrieval": {"treshold": 0.5}}"#, "`retrieval.treshold`", "`threshold`"),
            (r#"{"scope": {"threshold": 0.5, "margin": 1}}"#, "`scope.margin`", "`other_relations_margin`"),
        ] {
            let error = format!("{:#}", load(json).unwrap_err());
            assert!(error.contains(unknown) && error.contains(valid), "{json}: {error}");
        }
        // Values below a section's fields are the parse's to check.
        assert!(load(r#"{"locate": {"layers": {"auto": {"count": 3}}}}"#).is_ok());
    }

    /// Stored settings (in cache entries and sessions) written by a newer lafn, with a setting this one
    /// does not know, still read; the known ones keep their values.
    #[test]
    fn stored_settings_with_unknown_keys_still_read() {
        let stored = r#"{"edit": {"steps": 7, "added_later": true}, "added_section": {}}"#;
        let settings: MethodSettings = serde_json::from_str(stored).unwrap();
        assert_eq!(settings.edit.steps, 7);
    }

    #[test]
    fn an_eval_section_is_allowed() {
        let settings = load(r#"{"edit": {"steps": 3}, "eval": {"random_seed": 1}}"#).unwrap();
        assert_eq!(settings.edit.steps, 3);
    }

    #[test]
    fn every_bad_number_is_refused_by_name() {
        type Spoil = fn(&mut MethodSettings);
        let cases: [(&str, Spoil); 23] = [
            ("edit.learning_rate", |s| s.edit.learning_rate = Some(f64::NAN)),
            ("edit.learning_rate", |s| s.edit.learning_rate = Some(-1.0)),
            ("edit.learning_rate", |s| s.edit.learning_rate = Some(0.0)),
            ("edit.learning_rate", |s| s.edit.learning_rate = Some(f64::INFINITY)),
            ("edit.steps", |s| s.edit.steps = 0),
            ("edit.kl_weight", |s| s.edit.kl_weight = -0.5),
            ("edit.weight_decay", |s| s.edit.weight_decay = f64::NAN),
            ("edit.max_norm_ratio", |s| s.edit.max_norm_ratio = Some(0.0)),
            ("edit.stop_margin", |s| s.edit.stop_margin = f32::NEG_INFINITY),
            ("locate.beta", |s| s.locate.beta = 0.0),
            ("locate.beta", |s| s.locate.beta = 1.5),
            ("locate.layers.auto.count", |s| s.locate.layers = LayerChoice::Auto { count: 0 }),
            ("locate.generic_share", |s| s.locate.generic_share = Some(f32::NAN)),
            ("paraphrases.count", |s| s.paraphrases.count = usize::MAX),
            ("retrieval.threshold", |s| s.retrieval.threshold = 1.1),
            ("retrieval.window_slack", |s| s.retrieval.window_slack = usize::MAX),
            ("scope.threshold", |s| s.scope.threshold = Some(f32::NAN)),
            ("scope.other_relations_margin", |s| s.scope.other_relations_margin = Some(f32::NAN)),
            ("scope.other_relations_margin", |s| s.scope.other_relations_margin = Some(3.0)),
            ("scope.known_relation_similarity", |s| s.scope.known_relation_similarity = Some(f32::NAN)),
            ("scope.taught_margin", |s| s.scope.taught_margin = f32::NAN),
            ("scope.relation_table_margin", |s| s.scope.relation_table_margin = Some(f32::NAN)),
            ("scope.relation_table_margin", |s| s.scope.relation_table_margin = Some(-0.1)),
        ];
        for (key, spoil) in cases {
            let mut settings = MethodSettings::default();
            spoil(&mut settings);
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn a_settings_file_with_a_bad_value_is_refused() {
        let error = format!("{:#}", load(r#"{"edit": {"learning_rate": -1}}"#).unwrap_err());
        assert!(error.contains("edit.learning_rate") && error.contains("got -1"), "{error}");
    }
}

//! All settings of the method in one serialisable place, so runs are reproducible.

use serde::{Deserialize, Serialize};

use super::edit::EditSettings;
use super::locate::LocateSettings;
use super::prompts::ParaphraseSettings;
use super::retrieve::RetrievalSettings;
use super::scope::ScopeSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MethodSettings {
    pub paraphrases: ParaphraseSettings,
    pub locate: LocateSettings,
    pub edit: EditSettings,
    pub retrieval: RetrievalSettings,
    pub scope: ScopeSettings,
}

/// Reads method settings from a JSON file; missing fields take their defaults.
pub fn load_settings(path: &std::path::Path) -> crate::Result<MethodSettings> {
    use color_eyre::eyre::WrapErr;
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read settings {}", path.display()))?;
    serde_json::from_str(&text).wrap_err_with(|| format!("settings {} are not valid", path.display()))
}

//! All settings of the method in one serialisable place, so runs are reproducible.

use serde::{Deserialize, Serialize};

use super::edit::EditSettings;
use super::locate::LocateSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MethodSettings {
    pub locate: LocateSettings,
    pub edit: EditSettings,
}

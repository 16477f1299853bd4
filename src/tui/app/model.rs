//! Model pane state: the built-ins to choose from and the model the worker has loaded.

use std::path::PathBuf;

use super::{App, Command};
use crate::fetch;
use crate::method::cache::IndexRow;
use crate::runtime::ModelInfo;
use crate::tui::worker::Job;

#[derive(Debug, Clone)]
pub struct ModelState {
    pub builtins: Vec<&'static str>,
    pub selected: usize,
    /// The loaded model's spec; before the first load, the one being loaded. A load that fails
    /// leaves it (and the model) as it was.
    pub spec: String,
    pub info: Option<ModelInfo>,
    pub cache_dir: Option<PathBuf>,
    pub cache_rows: Vec<IndexRow>,
}

impl ModelState {
    pub fn new(spec: &str) -> Self {
        let builtins = fetch::builtin_names();
        let selected = builtins.iter().position(|b| *b == spec).unwrap_or(0);
        Self { builtins, selected, spec: spec.to_string(), info: None, cache_dir: None, cache_rows: Vec::new() }
    }

    pub(super) fn loaded(&mut self, spec: String, info: ModelInfo, cache_dir: PathBuf, cache_rows: Vec<IndexRow>) {
        self.spec = spec;
        self.info = Some(info);
        self.cache_dir = Some(cache_dir);
        self.cache_rows = cache_rows;
    }
}

impl App {
    pub(super) fn load_builtin(&mut self) -> Vec<Command> {
        match self.model.builtins.get(self.model.selected) {
            Some(name) => self.submit(Job::Load { spec: name.to_string() }),
            None => Vec::new(),
        }
    }

    pub(super) fn load_spec(&mut self, text: &str) -> Vec<Command> {
        let spec = text.trim();
        if spec.is_empty() {
            return Vec::new();
        }
        self.submit(Job::Load { spec: spec.to_string() })
    }
}

//! Optimize pane state: the settings list (the method settings themselves are the app's, shared with
//! the other panes), the group being edited and how the last edit stopped.

use super::{App, Command, InputTarget};
use crate::method::prompts::ParaphraseSource;
use crate::method::{LayerChoice, MethodSettings, StopReason};
use crate::session::GroupStatus;
use crate::tui::worker::EditResult;

#[derive(Debug, Clone, Default)]
pub struct OptimizeState {
    /// The selected line of [`Setting::ALL`].
    pub selected: usize,
    /// The group being edited by the worker.
    pub editing_group: Option<u64>,
    pub last_stop: Option<(StopReason, f64)>,
}

/// The editable settings of the Optimize pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    LearningRate,
    Steps,
    KlWeight,
    StopMargin,
    Layers,
    Beta,
    ParaphraseSource,
    ParaphraseCount,
}

impl Setting {
    pub const ALL: [Setting; 8] = [
        Setting::LearningRate,
        Setting::Steps,
        Setting::KlWeight,
        Setting::StopMargin,
        Setting::Layers,
        Setting::Beta,
        Setting::ParaphraseSource,
        Setting::ParaphraseCount,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Setting::LearningRate => "learning rate",
            Setting::Steps => "steps",
            Setting::KlWeight => "lambda (KL)",
            Setting::StopMargin => "stop margin",
            Setting::Layers => "layers",
            Setting::Beta => "beta",
            Setting::ParaphraseSource => "paraphrases",
            Setting::ParaphraseCount => "paraphrase count",
        }
    }

    pub fn value(self, s: &MethodSettings) -> String {
        match self {
            Setting::LearningRate => s.edit.learning_rate.map_or("auto".to_string(), |rate| rate.to_string()),
            Setting::Steps => s.edit.steps.to_string(),
            Setting::KlWeight => s.edit.kl_weight.to_string(),
            Setting::StopMargin => s.edit.stop_margin.to_string(),
            Setting::Layers => match &s.locate.layers {
                LayerChoice::Auto { count } => format!("auto {count}"),
                LayerChoice::Fixed(list) => list.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(","),
            },
            Setting::Beta => format!("{:.2}", s.locate.beta),
            Setting::ParaphraseSource => match s.paraphrases.source {
                ParaphraseSource::Templates => "templates",
                ParaphraseSource::Model => "model",
                ParaphraseSource::Both => "both",
            }
            .to_string(),
            Setting::ParaphraseCount => s.paraphrases.count.to_string(),
        }
    }

    /// Parses a typed value into the settings, which must stay valid; an error leaves them unchanged.
    fn apply(self, settings: &mut MethodSettings, text: &str) -> Result<(), String> {
        let text = text.trim();
        let bad = |what: &str| format!("{}: {what} (got `{text}`)", self.label());
        let mut s = settings.clone();
        match self {
            Setting::LearningRate => {
                s.edit.learning_rate = match text {
                    "auto" => None,
                    _ => Some(text.parse().map_err(|_| bad("a number or `auto`"))?),
                }
            }
            Setting::Steps => s.edit.steps = text.parse().map_err(|_| bad("a whole number"))?,
            Setting::KlWeight => s.edit.kl_weight = text.parse().map_err(|_| bad("a number"))?,
            Setting::StopMargin => s.edit.stop_margin = text.parse().map_err(|_| bad("a number"))?,
            Setting::Layers => {
                s.locate.layers = if let Some(count) = text.strip_prefix("auto") {
                    let count = count.trim();
                    LayerChoice::Auto {
                        count: if count.is_empty() { 2 } else { count.parse().map_err(|_| bad("`auto N` or 3,7"))? },
                    }
                } else {
                    LayerChoice::Fixed(
                        text.split(',')
                            .map(|l| l.trim().parse::<usize>())
                            .collect::<Result<_, _>>()
                            .map_err(|_| bad("`auto N` or a list like 3,7"))?,
                    )
                }
            }
            Setting::Beta => s.locate.beta = text.parse().map_err(|_| bad("a number"))?,
            Setting::ParaphraseSource => {
                s.paraphrases.source = match text {
                    "templates" => ParaphraseSource::Templates,
                    "model" => ParaphraseSource::Model,
                    "both" => ParaphraseSource::Both,
                    _ => return Err(bad("templates, model or both")),
                }
            }
            Setting::ParaphraseCount => s.paraphrases.count = text.parse().map_err(|_| bad("a whole number"))?,
        }
        s.validate().map_err(|e| format!("{}: {e}", self.label()))?;
        *settings = s;
        Ok(())
    }
}

impl App {
    /// The group whose losses the Optimize pane shows: the one being edited, else the selected one.
    pub fn optimize_group(&self) -> Option<&super::edits::GroupState> {
        self.optimize.editing_group.and_then(|id| self.edits.group_by_id(id)).or(self.edits.selected_group())
    }

    pub(super) fn change_setting(&mut self) {
        let setting = Setting::ALL[self.optimize.selected];
        self.open_input(InputTarget::Setting(setting), &setting.value(&self.settings));
    }

    pub(super) fn apply_setting(&mut self, setting: Setting, text: &str) -> Vec<Command> {
        match setting.apply(&mut self.settings, text) {
            Ok(()) => {
                self.error = None;
                if setting == Setting::Beta {
                    self.reselect();
                }
            }
            Err(e) => self.error = Some(e),
        }
        Vec::new()
    }

    /// Takes an edit's result. A cancelled edit caches nothing: a group cached before keeps its entry,
    /// whose located neurons and losses the check brings back in place of the cancelled run's.
    pub(super) fn edited(&mut self, result: EditResult) -> Vec<Command> {
        self.queued_edit_result(&result);
        self.model.cache_rows = result.cache_rows;
        self.optimize.last_stop = Some((result.stop, result.seconds));
        self.optimize.editing_group = None;
        if let Some(g) = self.edits.groups.iter_mut().find(|g| g.id == result.group_id) {
            g.saved.group = result.group;
            g.saved.located = Some(result.located);
            g.saved.loss_history = result.history;
            g.saved.status = if result.cache_entry.is_some() { GroupStatus::Cached } else { GroupStatus::Located };
            if result.cache_entry.is_some() {
                g.saved.cache_entry = result.cache_entry.clone();
            }
        }
        match result.cache_entry {
            Some(id) => {
                self.message = format!("edit {:?} in {:.0} s, cached as {id}", result.stop, result.seconds);
                if let Some(replaced) = &result.replaced {
                    self.message += &format!(", replacing {replaced}");
                }
                for note in &result.shared_subject_notes {
                    self.message += &format!("; {note}");
                }
                Vec::new()
            }
            None => {
                self.message = "edit cancelled: nothing cached".to_string();
                self.check_cache_entries()
            }
        }
    }
}

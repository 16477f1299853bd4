//! Neurons pane state: the layer shown for the selected group, the scroll of its LAFN list, and the
//! top tokens the worker found for its neurons.

use std::collections::{HashMap, HashSet};

use super::{App, Command};
use crate::method::select;
use crate::session::GroupStatus;
use crate::tui::layout::scroll_offset;
use crate::tui::worker::Job;

/// Beta moves by this much per key press.
const BETA_STEP: f32 = 0.05;

/// LAFN rows PgUp/PgDn scroll by.
const LAFN_PAGE: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct NeuronsState {
    pub layer_selected: usize,
    pub lafn_scroll: usize,
    /// Top tokens by (layer, neuron).
    pub top_tokens: HashMap<(usize, u32), Vec<String>>,
    /// Layers whose top tokens were asked for, so each is asked once.
    pub(super) requested_tokens: HashSet<usize>,
}

impl NeuronsState {
    pub(super) fn show_layer(&mut self, layer: usize) {
        self.layer_selected = layer;
        self.lafn_scroll = 0;
    }

    /// First heatmap row shown in `rows` rows.
    pub fn heatmap_offset(&self, rows: usize) -> usize {
        scroll_offset(self.layer_selected, rows)
    }

    /// Top tokens belong to the model: a new model needs them again.
    pub(super) fn forget_tokens(&mut self) {
        self.top_tokens.clear();
        self.requested_tokens.clear();
    }

    pub(super) fn top_tokens_found(&mut self, layer: usize, tokens: Vec<(u32, Vec<String>)>) {
        for (neuron, words) in tokens {
            self.top_tokens.insert((layer, neuron), words);
        }
    }
}

/// Beta after a step, kept on the step grid (no 0.7999999) and valid: above 0, at most 1.
fn round_beta(beta: f32) -> f32 {
    ((beta / BETA_STEP).round() * BETA_STEP).clamp(BETA_STEP, 1.0)
}

impl App {
    pub fn layer_count(&self) -> usize {
        self.edits.selected_group().and_then(|g| g.saved.located.as_ref()).map_or(0, |l| l.layers.len())
    }

    /// The selected layer's LAFNs with their per-language frequencies: from the measurements when there
    /// are any, else what the saved located neurons hold for that layer.
    pub fn layer_lafns(&self) -> Vec<(u32, Vec<f32>)> {
        let Some(g) = self.edits.selected_group() else { return Vec::new() };
        let layer = self.neurons.layer_selected;
        if let Some(m) = &g.measurements {
            if layer < m.num_layers() {
                return m
                    .layer_lafns(layer, &self.settings.locate)
                    .into_iter()
                    .map(|n| (n, m.neuron_frequencies(layer, n)))
                    .collect();
            }
        }
        let Some(located) = &g.saved.located else { return Vec::new() };
        match (located.selected.get(&layer), located.frequencies.get(&layer)) {
            (Some(neurons), Some(freqs)) => neurons.iter().copied().zip(freqs.iter().cloned()).collect(),
            _ => Vec::new(),
        }
    }

    pub(super) fn select_layer(&mut self, layer: usize) -> Vec<Command> {
        self.neurons.show_layer(layer);
        self.request_top_tokens()
    }

    pub(super) fn scroll_lafns(&mut self, down: bool) -> Vec<Command> {
        let scroll = &mut self.neurons.lafn_scroll;
        *scroll = if down { *scroll + LAFN_PAGE } else { scroll.saturating_sub(LAFN_PAGE) };
        self.request_top_tokens()
    }

    pub(super) fn step_beta(&mut self, up: bool) -> Vec<Command> {
        let beta = self.settings.locate.beta;
        self.settings.locate.beta = round_beta(if up { beta + BETA_STEP } else { beta - BETA_STEP });
        self.reselect();
        self.neurons.requested_tokens.clear();
        self.request_top_tokens()
    }

    /// Reselects the selected group's LAFNs from its measurements with the current settings.
    pub(super) fn reselect(&mut self) {
        let settings = self.settings.locate.clone();
        let Some(g) = self.edits.groups.get_mut(self.edits.group_selected) else { return };
        let Some(measurements) = &g.measurements else {
            self.message = "beta applies at the next locate (r re-measures)".into();
            return;
        };
        match select(measurements, &settings) {
            Ok(located) => {
                g.saved.located = Some(located);
                if g.saved.status != GroupStatus::Draft {
                    g.saved.status = GroupStatus::Located;
                }
                self.error = None;
            }
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    /// Asks the worker for the top tokens of the selected layer's LAFNs, once per layer.
    pub(super) fn request_top_tokens(&mut self) -> Vec<Command> {
        let layer = self.neurons.layer_selected;
        if self.model.info.is_none() || self.neurons.requested_tokens.contains(&layer) {
            return Vec::new();
        }
        let neurons: Vec<u32> = self
            .layer_lafns()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|&n| !self.neurons.top_tokens.contains_key(&(layer, n)))
            .collect();
        if neurons.is_empty() {
            return Vec::new();
        }
        self.neurons.requested_tokens.insert(layer);
        self.submit(Job::TopTokens { layer, neurons })
    }
}

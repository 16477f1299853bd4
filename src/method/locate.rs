//! Locating language-agnostic factual neurons (LAFNs): FFN neurons a fact activates in every language.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which token's activation decides whether a neuron fires on an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationPosition {
    /// The last prompt token (where the answer is produced).
    #[default]
    Last,
    /// The last token of the subject's mention (falls back to `Last` when the subject isn't found).
    SubjectLast,
    /// Mean activation over all prompt tokens.
    Mean,
}

/// Which layers to locate in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerChoice {
    /// The `count` layers with the most LAFNs for this group (chosen by the data).
    Auto { count: usize },
    /// Exactly these layers.
    Fixed(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocateSettings {
    /// A neuron is a factual neuron of a language when it fires on at least this share of the
    /// language's inputs (beta).
    pub beta: f32,
    /// A neuron fires when its activation exceeds this value.
    pub activation_threshold: f32,
    pub position: ActivationPosition,
    pub layers: LayerChoice,
    /// Drop neurons that fire on at least this share of unrelated reference prompts (generic
    /// neurons carry no fact); `None` keeps them.
    pub generic_share: Option<f32>,
    /// At most this many LAFNs per layer, keeping the most strongly activated.
    pub max_per_layer: Option<usize>,
}

/// Per-layer statistics for the heatmap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub layer: usize,
    /// |D_i^l| per language, in the order of [`LocatedNeurons::langs`].
    pub factual_counts: Vec<usize>,
    /// Pairwise Jaccard overlap of the languages' factual neuron sets (langs x langs).
    pub jaccard: Vec<Vec<f32>>,
    /// |LAFN_i| after the generic-neuron filter.
    pub lafn_count: usize,
}

/// The result of locating for one edit group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocatedNeurons {
    pub langs: Vec<String>,
    /// Statistics of every layer of the model.
    pub layers: Vec<LayerStats>,
    /// The layers chosen for editing, each with its LAFNs.
    pub selected: BTreeMap<usize, Vec<u32>>,
    /// For each selected layer and LAFN (same order as `selected`), its firing frequency per language.
    pub frequencies: BTreeMap<usize, Vec<Vec<f32>>>,
}

impl LocatedNeurons {
    pub fn neuron_count(&self) -> usize {
        self.selected.values().map(Vec::len).sum()
    }
}

impl Default for LocateSettings {
    fn default() -> Self {
        Self {
            beta: 0.8,
            activation_threshold: 0.0,
            position: ActivationPosition::Last,
            layers: LayerChoice::Auto { count: 2 },
            generic_share: Some(0.9),
            max_per_layer: Some(64),
        }
    }
}

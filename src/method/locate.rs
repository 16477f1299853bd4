//! Locating language-agnostic factual neurons (LAFNs): FFN neurons a fact activates in every language.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use color_eyre::eyre::{bail, eyre};
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use crate::runtime::{Hooks, KvCache, Model, PaddedBatch, PromptStates, Tokenizer, PREFILL_CHUNK};
use crate::Result;

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

/// Unrelated prompts in several languages: neurons that fire on nearly all of them are generic.
const REFERENCE_PROMPTS: &[&str] = &[
    "The weather today is",
    "My favourite food is",
    "How many legs does a spider have?",
    "Who wrote the novel War and Peace?",
    "Das Wetter heute ist",
    "Wie alt ist die Erde?",
    "Le chat dort sur le canapé et",
    "Quelle est la couleur du ciel ?",
    "El libro está sobre la mesa y",
    "¿Cuántos días tiene una semana?",
    "O que é a fotossíntese?",
    "Какой сегодня день недели?",
    "今天的天气怎么样？",
    "水的化学式是什么？",
    "Kolik je hodin?",
    "Hoe laat is het?",
    "วันนี้อากาศเป็นอย่างไร",
    "Bugün hava nasıl?",
    "Hôm nay thời tiết thế nào?",
    "The speed of light is",
];

/// Activation vectors (one per input) of every layer: `[layer][input][neuron]`.
type LayerActivations = Vec<Vec<Vec<f32>>>;

/// What the reference prompts' activations depend on: the weights, the tokens (the tokenizer) and
/// where they are read.
#[derive(PartialEq)]
struct ReferenceKey {
    weights: u64,
    ids: Vec<Vec<u32>>,
    position: ActivationPosition,
}

/// The reference prompts' activations last measured. They are the same for every group, and as
/// short prompts in batches of their own they took 0.4 s of a 12-language group's 2 s to locate.
static REFERENCE_ACTIVATIONS: Mutex<Option<(ReferenceKey, Arc<LayerActivations>)>> = Mutex::new(None);

fn known_references(key: &ReferenceKey) -> Option<Arc<LayerActivations>> {
    let kept = REFERENCE_ACTIVATIONS.lock().ok()?;
    kept.as_ref().filter(|(kept_key, _)| kept_key == key).map(|(_, acts)| Arc::clone(acts))
}

fn keep_references(key: ReferenceKey, acts: Arc<LayerActivations>) -> Arc<LayerActivations> {
    if let Ok(mut kept) = REFERENCE_ACTIVATIONS.lock() {
        *kept = Some((key, Arc::clone(&acts)));
    }
    acts
}

/// What locating measures with the model (the expensive part, done once per group): how often and how
/// strongly every neuron fires on each language's inputs. Selecting LAFNs from it with any beta is cheap
/// ([`select`]), so a front end can vary beta live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    pub langs: Vec<String>,
    /// Firing share `[layer][lang][neuron]`.
    pub frequencies: Vec<Vec<Vec<f32>>>,
    /// Mean activation `[layer][lang][neuron]`.
    pub strengths: Vec<Vec<Vec<f32>>>,
    /// Firing share on unrelated reference prompts `[layer][neuron]`; empty when the settings measured none.
    pub generic: Vec<Vec<f32>>,
}

impl Measurements {
    pub fn num_layers(&self) -> usize {
        self.frequencies.len()
    }

    fn ffn_size(&self) -> usize {
        self.frequencies.first().and_then(|langs| langs.first()).map_or(0, Vec::len)
    }

    /// Each language's factual neurons in `layer` (sorted): those firing on at least `beta` of its inputs.
    fn factual(&self, layer: usize, beta: f32) -> Vec<Vec<u32>> {
        self.frequencies[layer]
            .iter()
            .map(|f| (0..f.len() as u32).filter(|&j| f[j as usize] >= beta).collect())
            .collect()
    }

    /// The LAFNs of `layer` (factual in every language, not generic), strongest first, capped at
    /// `max_per_layer`, returned sorted by index.
    pub fn layer_lafns(&self, layer: usize, settings: &LocateSettings) -> Vec<u32> {
        self.strongest(layer, self.unranked_lafns(layer, &self.factual(layer, settings.beta), settings), settings)
    }

    /// `neurons` of `layer` ranked by strength, capped at `max_per_layer`, returned sorted by index.
    fn strongest(&self, layer: usize, mut neurons: Vec<u32>, settings: &LocateSettings) -> Vec<u32> {
        // Keep the neurons every language drives hardest: rank by the weakest language's mean activation.
        let weakest =
            |j: u32| self.strengths[layer].iter().map(|s: &Vec<f32>| s[j as usize]).fold(f32::INFINITY, f32::min);
        neurons.sort_by(|&a, &b| weakest(b).total_cmp(&weakest(a)));
        if let Some(cap) = settings.max_per_layer {
            neurons.truncate(cap);
        }
        neurons.sort_unstable();
        neurons
    }

    /// Firing share of `neuron` in `layer` for each language.
    pub fn neuron_frequencies(&self, layer: usize, neuron: u32) -> Vec<f32> {
        self.frequencies[layer].iter().map(|f| f[neuron as usize]).collect()
    }

    fn unranked_lafns(&self, layer: usize, factual: &[Vec<u32>], settings: &LocateSettings) -> Vec<u32> {
        (0..self.ffn_size() as u32)
            .filter(|&j| factual.iter().all(|set| set.binary_search(&j).is_ok()))
            .filter(|&j| match (settings.generic_share, self.generic.get(layer)) {
                (Some(limit), Some(shares)) => shares[j as usize] < limit,
                _ => true,
            })
            .collect()
    }
}

/// Locates the LAFNs of an edit group: [`measure`] then [`select`].
pub fn locate(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    settings: &LocateSettings,
) -> Result<LocatedNeurons> {
    select(&measure(model, tokenizer, group, settings)?, settings)
}

/// Runs the model over every language's prompt and paraphrases (and the reference prompts when
/// `settings.generic_share` is set) and records how each neuron fires. Uses `activation_threshold`
/// and `position` of the settings; the rest only matter to [`select`].
pub fn measure(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    settings: &LocateSettings,
) -> Result<Measurements> {
    Ok(measure_keeping_states(model, tokenizer, group, settings)?.0)
}

/// [`measure`], also returning the keys and values of the inputs it ran, which an edit's training
/// prompts begin with (see [`crate::runtime::PrefixCachedBatch`]).
pub fn measure_keeping_states(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    settings: &LocateSettings,
) -> Result<(Measurements, PromptStates)> {
    group.validate()?;
    settings.validate()?;
    let c = model.config();
    let langs: Vec<String> = group.descriptors.iter().map(|d| d.lang.clone()).collect();
    // Every language's inputs run in the same batches, and so do the reference prompts unless they
    // were measured before on these weights.
    let mut probes = Vec::new();
    let mut spans = Vec::with_capacity(langs.len());
    for d in &group.descriptors {
        let start = probes.len();
        for text in std::iter::once(d.prompt.as_str()).chain(d.all_paraphrases()) {
            probes.push(probe(tokenizer, text, Some(&d.subject), settings.position)?);
        }
        spans.push(start..probes.len());
    }
    let references_from = probes.len();
    let references = match settings.generic_share {
        Some(_) => {
            let reference_probes: Vec<Probe> = REFERENCE_PROMPTS
                .iter()
                .map(|t| probe(tokenizer, t, None, settings.position))
                .collect::<Result<_>>()?;
            let ids = reference_probes.iter().map(|p| p.ids.clone()).collect();
            let key = ReferenceKey { weights: model.weights_id(), ids, position: settings.position };
            let known = known_references(&key);
            if known.is_none() {
                probes.extend(reference_probes);
            }
            Some((key, known))
        }
        None => None,
    };
    let (acts, states) = activations(model, tokenizer.pad_id(), &probes, settings.position)?;
    let threshold = settings.activation_threshold;
    let mut frequencies = vec![Vec::with_capacity(langs.len()); c.num_layers];
    let mut strengths = vec![Vec::with_capacity(langs.len()); c.num_layers];
    for span in spans {
        for (layer, rows) in acts.iter().enumerate() {
            frequencies[layer].push(firing_share(&rows[span.clone()], threshold));
            strengths[layer].push(mean_rows(&rows[span.clone()]));
        }
    }
    let generic = match references {
        Some((key, known)) => {
            let reference_acts = match known {
                Some(known) => known,
                None => {
                    let measured: LayerActivations = acts.iter().map(|rows| rows[references_from..].to_vec()).collect();
                    keep_references(key, Arc::new(measured))
                }
            };
            reference_acts.iter().map(|rows| firing_share(rows, threshold)).collect()
        }
        None => Vec::new(),
    };
    Ok((Measurements { langs, frequencies, strengths, generic }, states))
}

/// Selects LAFNs from measurements with the settings' beta, generic filter, layer choice and cap.
pub fn select(measured: &Measurements, settings: &LocateSettings) -> Result<LocatedNeurons> {
    settings.validate()?;
    let num_layers = measured.num_layers();
    let (layers, unranked): (Vec<LayerStats>, Vec<Vec<u32>>) = (0..num_layers)
        .map(|layer| {
            let factual = measured.factual(layer, settings.beta);
            let lafns = measured.unranked_lafns(layer, &factual, settings);
            let stats = LayerStats {
                layer,
                factual_counts: factual.iter().map(Vec::len).collect(),
                jaccard: factual.iter().map(|a| factual.iter().map(|b| jaccard(a, b)).collect()).collect(),
                lafn_count: lafns.len(),
            };
            (stats, lafns)
        })
        .unzip();

    let chosen_layers: Vec<usize> = match &settings.layers {
        LayerChoice::Fixed(list) => {
            if let Some(bad) = list.iter().find(|&&l| l >= num_layers) {
                bail!("layer {bad} does not exist: the model has {num_layers} layers");
            }
            list.clone()
        }
        LayerChoice::Auto { count } => {
            let mut by_count: Vec<usize> = (0..num_layers).collect();
            // Most LAFNs first; among equals, the later layer (closer to the answer).
            by_count.sort_by_key(|&l| (std::cmp::Reverse(layers[l].lafn_count), std::cmp::Reverse(l)));
            by_count.into_iter().take(*count).filter(|&l| layers[l].lafn_count > 0).collect()
        }
    };
    let mut selected = BTreeMap::new();
    let mut selected_frequencies = BTreeMap::new();
    for layer in chosen_layers {
        let neurons = measured.strongest(layer, unranked[layer].clone(), settings);
        let per_neuron: Vec<Vec<f32>> = neurons.iter().map(|&j| measured.neuron_frequencies(layer, j)).collect();
        selected_frequencies.insert(layer, per_neuron);
        selected.insert(layer, neurons);
    }
    Ok(LocatedNeurons { langs: measured.langs.clone(), layers, selected, frequencies: selected_frequencies })
}

/// Bytes of FFN activations (every layer, every position) one padded batch of inputs may capture.
const CAPTURE_BUDGET_BYTES: usize = 256 << 20;

/// One input as locating reads it: the tokens the chosen position depends on, and that position.
struct Probe {
    ids: Vec<u32>,
    at: usize,
}

/// FFN activations at each probe's position, `[layer][probe][neuron]`. Probes of at most
/// [`PREFILL_CHUNK`] tokens run together in right-padded batches (causal attention keeps a row's real
/// tokens from seeing its padding), as many as fit [`CAPTURE_BUDGET_BYTES`] of captured activations:
/// one pass over the weights serves many inputs; a probe another one begins with is read from that
/// one's pass (a prompt and its answer frame, about 30% of an edit group's tokens). A longer input runs
/// alone, in chunks over a KV cache, keeping only what the position needs: memory grows linearly with
/// its length. The batches' keys and values are returned too.
fn activations(
    model: &Model,
    pad_id: u32,
    probes: &[Probe],
    position: ActivationPosition,
) -> Result<(LayerActivations, PromptStates)> {
    let c = model.config();
    let budget_tokens = (CAPTURE_BUDGET_BYTES / (c.ffn_size * c.num_layers * 4).max(1)).max(PREFILL_CHUNK);
    let (long, short): (Vec<usize>, Vec<usize>) = (0..probes.len()).partition(|&i| probes[i].ids.len() > PREFILL_CHUNK);
    let short_ids: Vec<Vec<u32>> = short.iter().map(|&i| probes[i].ids.clone()).collect();
    let mut per_probe: Vec<Vec<Vec<f32>>> = vec![Vec::new(); probes.len()];
    let mut states = PromptStates::default();
    for batch in PaddedBatch::by_length_sharing_prefixes(&short_ids, budget_tokens) {
        let seqs: Vec<Vec<u32>> = batch.rows.iter().map(|&s| short_ids[s].clone()).collect();
        let reads: Vec<(usize, &Probe)> = batch.served.iter().map(|&(s, row)| (row, &probes[short[s]])).collect();
        let (read, cache) = batch_activations(model, pad_id, &seqs, &reads, position)?;
        for (&(s, _), activations) in batch.served.iter().zip(read) {
            per_probe[short[s]] = activations;
        }
        states.keep(&seqs, cache);
    }
    for i in long {
        per_probe[i] = chunked_activations(model, &probes[i], position)?;
    }
    let mut result = vec![Vec::with_capacity(probes.len()); c.num_layers];
    for per_layer in per_probe {
        for (layer, row) in per_layer.into_iter().enumerate() {
            result[layer].push(row);
        }
    }
    Ok((result, states))
}

/// Where `position` reads `text`, and the tokens up to there (all of them for the mean).
fn probe(tokenizer: &Tokenizer, text: &str, subject: Option<&str>, position: ActivationPosition) -> Result<Probe> {
    let mut ids = tokenizer.encode_prompt(text)?;
    let Some(last) = ids.len().checked_sub(1) else { bail!("an input to locate on has no tokens: `{text}`") };
    let at = match (position, subject.and_then(|s| text.find(s).map(|at| at + s.len()))) {
        (ActivationPosition::SubjectLast, Some(end)) => {
            tokenizer.encode_prompt(&text[..end])?.len().saturating_sub(1).min(last)
        }
        _ => last,
    };
    // Tokens after the chosen position cannot change its activation (attention is causal).
    if position != ActivationPosition::Mean {
        ids.truncate(at + 1);
    }
    Ok(Probe { ids, at })
}

/// One padded forward pass over short sequences: per read (a row of the batch and a probe that row
/// begins with), per layer, the probe's activation row; and the pass's keys and values.
fn batch_activations(
    model: &Model,
    pad_id: u32,
    seqs: &[Vec<u32>],
    reads: &[(usize, &Probe)],
    position: ActivationPosition,
) -> Result<(Vec<Vec<Vec<f32>>>, KvCache)> {
    let num_layers = model.config().num_layers;
    let all_layers: Vec<usize> = (0..num_layers).collect();
    let batch = PaddedBatch::new(seqs, pad_id, model.device())?;
    let hooks = Hooks { capture_layers: &all_layers, stop_after_layer: Some(num_layers - 1), ..Hooks::default() };
    let mut cache = KvCache::default();
    let out = model.forward(&batch.ids, Some(&mut cache), hooks)?;
    let mut rows = vec![Vec::with_capacity(num_layers); reads.len()];
    for layer in &all_layers {
        let h = out.activations.get(layer).ok_or_else(|| eyre!("layer {layer} gave no activation"))?;
        for (read, &(row, p)) in reads.iter().enumerate() {
            let h = h.get(row)?;
            let activation = match position {
                ActivationPosition::Mean => (h.narrow(0, 0, p.ids.len())?.sum(0)? / p.ids.len() as f64)?,
                _ => h.get(p.at)?,
            };
            rows[read].push(activation.to_vec1::<f32>()?);
        }
    }
    Ok((rows, cache))
}

/// A long probe's activation row per layer, run alone in chunks of [`PREFILL_CHUNK`] over a KV cache.
fn chunked_activations(model: &Model, probe: &Probe, position: ActivationPosition) -> Result<Vec<Vec<f32>>> {
    let num_layers = model.config().num_layers;
    let all_layers: Vec<usize> = (0..num_layers).collect();
    let mut cache = KvCache::default();
    let mut rows: Vec<Option<Tensor>> = vec![None; num_layers];
    for (index, chunk) in probe.ids.chunks(PREFILL_CHUNK).enumerate() {
        let start = index * PREFILL_CHUNK;
        let holds_position = (start..start + chunk.len()).contains(&probe.at);
        let capture = if position == ActivationPosition::Mean || holds_position { &all_layers[..] } else { &[] };
        let hooks = Hooks { capture_layers: capture, stop_after_layer: Some(num_layers - 1), ..Hooks::default() };
        let out = model.forward(&Tensor::new(chunk, model.device())?.unsqueeze(0)?, Some(&mut cache), hooks)?;
        for (layer, h) in &out.activations {
            let h = h.get(0)?;
            rows[*layer] = Some(match (position, rows[*layer].take()) {
                (ActivationPosition::Mean, Some(sum)) => (sum + h.sum(0)?)?,
                (ActivationPosition::Mean, None) => h.sum(0)?,
                _ => h.get(probe.at - start)?,
            });
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(layer, row)| {
            let row = row.ok_or_else(|| eyre!("layer {layer} gave no activation"))?;
            let row = if position == ActivationPosition::Mean { (row / probe.ids.len() as f64)? } else { row };
            Ok(row.to_vec1::<f32>()?)
        })
        .collect()
}

/// Share of rows on which each neuron's activation exceeds the threshold.
fn firing_share(rows: &[Vec<f32>], threshold: f32) -> Vec<f32> {
    let n = rows.len().max(1) as f32;
    let width = rows.first().map_or(0, Vec::len);
    (0..width).map(|j| rows.iter().filter(|r| r[j] > threshold).count() as f32 / n).collect()
}

fn mean_rows(rows: &[Vec<f32>]) -> Vec<f32> {
    let n = rows.len().max(1) as f32;
    let width = rows.first().map_or(0, Vec::len);
    (0..width).map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / n).collect()
}

/// |A ∩ B| / |A ∪ B| of two sorted sets (1 when both are empty).
fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    let common = a.iter().filter(|x| b.binary_search(x).is_ok()).count();
    let union = a.len() + b.len() - common;
    if union == 0 {
        1.0
    } else {
        common as f32 / union as f32
    }
}

/// A per-layer table of located neurons, as `lafn locate` prints it.
pub fn describe_located(located: &LocatedNeurons) -> String {
    let mut out = format!("layer  LAFNs  |D| per language: {}\n", located.langs.join(" "));
    for stats in &located.layers {
        let counts: Vec<String> = stats.factual_counts.iter().map(|c| c.to_string()).collect();
        let mark = if located.selected.contains_key(&stats.layer) { "*" } else { " " };
        out.push_str(&format!("{mark}{:4}  {:5}  {}\n", stats.layer, stats.lafn_count, counts.join(" ")));
    }
    for (layer, neurons) in &located.selected {
        out.push_str(&format!("layer {layer}: {} neurons {:?}\n", neurons.len(), neurons));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three layers x 2 languages x 6 neurons. Layer 1: neurons 0-3 fire in both languages (3 generic);
    /// layer 2: neurons 4-5 in both; layer 0: none shared.
    fn measurements() -> Measurements {
        let on = |set: &[usize]| (0..6).map(|j| if set.contains(&j) { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        let frequencies = vec![
            vec![on(&[0, 1]), on(&[2, 3])],
            vec![on(&[0, 1, 2, 3, 5]), on(&[0, 1, 2, 3])],
            vec![on(&[4, 5]), on(&[4, 5])],
        ];
        // Strength ranks neuron j of layer 1 by its weakest language: 2 > 0 > 1.
        let strengths = vec![
            vec![vec![1.0; 6], vec![1.0; 6]],
            vec![vec![0.5, 0.9, 3.0, 1.0, 1.0, 1.0], vec![2.0, 0.2, 2.5, 1.0, 1.0, 1.0]],
            vec![vec![1.0; 6], vec![1.0; 6]],
        ];
        let generic = vec![vec![0.0; 6], on(&[3]), vec![0.0; 6]];
        Measurements { langs: vec!["en".into(), "de".into()], frequencies, strengths, generic }
    }

    #[test]
    fn select_filters_generic_ranks_by_weakest_language_and_picks_the_richest_layers() {
        let settings = LocateSettings { max_per_layer: Some(2), ..LocateSettings::default() };
        let located = select(&measurements(), &settings).unwrap();
        let counts: Vec<usize> = located.layers.iter().map(|l| l.lafn_count).collect();
        assert_eq!(counts, [0, 3, 2], "shared neurons minus the generic one");
        assert_eq!(located.layers[1].factual_counts, [5, 4]);
        assert_eq!(located.layers[1].jaccard[0][1], 0.8);
        assert_eq!(located.layers[0].jaccard[0][1], 0.0);
        // Layer 1 keeps its two strongest (2 and 0, not 1); layer 0 has none and is not chosen.
        assert_eq!(located.selected, BTreeMap::from([(1, vec![0, 2]), (2, vec![4, 5])]));
        assert_eq!(located.frequencies[&1], [vec![1.0, 1.0], vec![1.0, 1.0]]);
        // The per-layer view a front end shows for any layer agrees with what was selected.
        assert_eq!(measurements().layer_lafns(1, &settings), located.selected[&1]);
    }

    #[test]
    fn select_honours_fixed_layers_beta_and_rejects_missing_layers() {
        let measured = measurements();
        let fixed = LocateSettings { layers: LayerChoice::Fixed(vec![0, 2]), ..LocateSettings::default() };
        let located = select(&measured, &fixed).unwrap();
        assert_eq!(located.selected, BTreeMap::from([(0, vec![]), (2, vec![4, 5])]));
        let keep_generic = LocateSettings { generic_share: None, ..LocateSettings::default() };
        assert_eq!(select(&measured, &keep_generic).unwrap().layers[1].lafn_count, 4);
        let missing = LocateSettings { layers: LayerChoice::Fixed(vec![3]), ..LocateSettings::default() };
        assert!(select(&measured, &missing).unwrap_err().to_string().contains("layer 3 does not exist"));
        assert!(select(&measured, &LocateSettings { beta: 1.5, ..LocateSettings::default() }).is_err());
    }

    #[test]
    fn the_reference_prompts_are_measured_once_for_each_loaded_weights() {
        use crate::method::EditDescriptor;
        use crate::runtime::tiny::{write_tiny_model, TinySpec};
        use crate::runtime::{Arch, LoadedModel, WeightMode};
        let dir = tempfile::tempdir().unwrap();
        let load = |seed: u64| {
            let files =
                write_tiny_model(&dir.path().join(seed.to_string()), TinySpec { seed, ..TinySpec::new(Arch::Llama) });
            LoadedModel::load(&files.unwrap(), WeightMode::Dense, &candle_core::Device::Cpu).unwrap()
        };
        let (a, b) = (load(7), load(8));
        let group = EditGroup {
            name: "bob".into(),
            descriptors: vec![EditDescriptor {
                lang: "en".into(),
                subject: "Bob".into(),
                prompt: "Bob was born in".into(),
                target: "Paris".into(),
                paraphrases: vec!["Where was Bob born?".into()],
                generated_paraphrases: Vec::new(),
                aliases: Vec::new(),
            }],
        };
        let settings = LocateSettings::default();
        // The reference prompts' firing shares measured alone.
        let alone = |loaded: &LoadedModel| -> Vec<Vec<f32>> {
            let tokenizer = &loaded.tokenizer;
            let probes: Vec<Probe> =
                REFERENCE_PROMPTS.iter().map(|t| probe(tokenizer, t, None, settings.position).unwrap()).collect();
            let (acts, _) = activations(&loaded.model, tokenizer.pad_id(), &probes, settings.position).unwrap();
            acts.iter().map(|rows| firing_share(rows, settings.activation_threshold)).collect()
        };
        let measured = |loaded: &LoadedModel| measure(&loaded.model, &loaded.tokenizer, &group, &settings).unwrap();
        let (first_a, of_b, again_a) = (measured(&a), measured(&b), measured(&a));
        assert_ne!(alone(&a), alone(&b), "other weights, other firing");
        assert_eq!(first_a.generic, alone(&a));
        assert_eq!(of_b.generic, alone(&b), "the other weights' reference prompts are their own");
        assert_eq!(again_a, first_a, "kept or measured again, the same");
    }

    #[test]
    fn probes_run_together_read_what_each_reads_alone() {
        use crate::runtime::tiny::{write_tiny_model, TinySpec};
        use crate::runtime::{Arch, LoadedModel, WeightMode};
        let dir = tempfile::tempdir().unwrap();
        let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
        let loaded = LoadedModel::load(&files, WeightMode::Dense, &candle_core::Device::Cpu).unwrap();
        let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
        let long = "the cat sat on the mat and ".repeat(60);
        // Lengths out of order, one past a prefill chunk (it runs alone, in chunks).
        let texts = ["Marie Curie was born in", "Who?", long.as_str(), "Where was Marie Curie born, and when?"];
        for position in [ActivationPosition::Last, ActivationPosition::SubjectLast, ActivationPosition::Mean] {
            let probes: Vec<Probe> =
                texts.iter().map(|t| probe(tokenizer, t, Some("Marie Curie"), position).unwrap()).collect();
            assert!(probes[2].ids.len() > PREFILL_CHUNK);
            let (together, _) = activations(model, tokenizer.pad_id(), &probes, position).unwrap();
            for (i, p) in probes.iter().enumerate() {
                let alone = chunked_activations(model, p, position).unwrap();
                for (layer, row) in alone.iter().enumerate() {
                    let got = &together[layer][i];
                    let worst = row.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(worst < 1e-4, "{position:?}, probe {i}, layer {layer}: off by {worst}");
                }
            }
        }
    }
}

//! Small, model-free inputs shared by the cache and session tests.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::method::cache::{EditStore, NewEntry};
use crate::method::edit::{LayerUpdate, OptimizeStep, UpdateValues};
use crate::method::group::{EditDescriptor, EditGroup};
use crate::method::locate::{LayerStats, LocatedNeurons};
use crate::method::scope::ScopeKeys;
use crate::method::settings::MethodSettings;
use crate::text::languages::other_question_count;

pub const HIDDEN: usize = 8;

pub fn descriptor(lang: &str, subject: &str, prompt: &str, target: &str) -> EditDescriptor {
    EditDescriptor {
        lang: lang.into(),
        subject: subject.into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: vec![format!("{prompt}?")],
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    }
}

pub fn group(name: &str) -> EditGroup {
    EditGroup {
        name: name.into(),
        descriptors: vec![
            descriptor("en", &format!("{name} Tower"), "Where is it?", "Paris"),
            descriptor("zh", &format!("{name}塔"), "它在哪里？", "巴黎"),
        ],
    }
}

pub fn located() -> LocatedNeurons {
    let langs = vec!["en".to_string(), "zh".to_string()];
    let layers = (0..3)
        .map(|layer| LayerStats {
            layer,
            factual_counts: vec![5, 4],
            jaccard: vec![vec![1.0, 0.5], vec![0.5, 1.0]],
            lafn_count: 3,
        })
        .collect();
    LocatedNeurons {
        langs,
        layers,
        selected: BTreeMap::from([(1, vec![0, 3, 7]), (2, vec![2])]),
        frequencies: BTreeMap::from([(1, vec![vec![1.0, 0.9]; 3]), (2, vec![vec![0.8, 1.0]])]),
    }
}

/// Update values for [`located`], distinct per `seed`.
pub fn update(seed: f32) -> UpdateValues {
    let layer = |layer: usize, neurons: Vec<u32>| {
        let values: Vec<f32> = (0..neurons.len() * HIDDEN).map(|i| seed + i as f32 * 0.25).collect();
        let delta = Tensor::from_vec(values, (neurons.len(), HIDDEN), &Device::Cpu).unwrap();
        LayerUpdate { layer, neurons, delta }
    };
    UpdateValues { layers: vec![layer(1, vec![0, 3, 7]), layer(2, vec![2])] }
}

pub fn scope_keys() -> ScopeKeys {
    let keys = Tensor::from_vec((0..2 * HIDDEN).map(|i| i as f32).collect(), (2, HIDDEN), &Device::Cpu).unwrap();
    let rows = other_question_count();
    let other_relations =
        Tensor::from_vec((0..rows * HIDDEN).map(|i| -(i as f32)).collect(), (rows, HIDDEN), &Device::Cpu).unwrap();
    ScopeKeys { layer: 3, read_from: Some(1), keys, other_relations }
}

/// Stores an edit of `group` made of the fixtures below (update values distinct per `seed`); its id.
pub fn store_fixture_edit(store: &mut dyn EditStore, group: &EditGroup, seed: f32) -> String {
    let (located, update, settings) = (located(), update(seed), MethodSettings::default());
    let (loss_history, scope_keys) = (loss_history(), scope_keys());
    let edit = NewEntry {
        group,
        located: &located,
        update: &update,
        settings: &settings,
        loss_history: &loss_history,
        scope_keys: &scope_keys,
    };
    store.insert(edit).unwrap()
}

pub fn loss_history() -> Vec<OptimizeStep> {
    (0..3)
        .map(|step| OptimizeStep {
            step,
            target_loss: 3.0 - step as f32,
            kl_loss: 0.01,
            total_loss: 3.005 - step as f32,
            target_probs: vec![0.1 * step as f32, 0.2],
            all_correct: step == 2,
            target_margins: vec![step as f32 - 1.5, 0.5],
        })
        .collect()
}

/// The numbers of update values, for comparing two of them.
pub fn update_numbers(update: &UpdateValues) -> Vec<(usize, Vec<u32>, Vec<Vec<f32>>)> {
    update.layers.iter().map(|l| (l.layer, l.neurons.clone(), l.delta.to_vec2().unwrap())).collect()
}

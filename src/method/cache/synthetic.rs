//! Caches of many entries, to measure what a user with thousands of edits meets (`lafn bench
//! --cache-entries N`): the groups of a benchmark file over and over, each copy with its subjects
//! respelled (every letter replaced by a letter of the same script seen in the file's subjects), so
//! that every entry names a subject of its own; update values and scope keys are random, of the
//! shapes real edits have.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::disk::EditCache;
use super::{entry_id, EditStore, NewEntry};
use crate::method::edit::{LayerUpdate, UpdateValues};
use crate::method::group::{BenchmarkRecord, EditGroup};
use crate::method::locate::LocatedNeurons;
use crate::method::scope::{other_relation_questions, QuestionEncoder, ScopeKeys};
use crate::method::settings::MethodSettings;
use crate::runtime::ModelConfig;
use crate::text::scripts::Script;
use crate::Result;

/// Neurons per edited layer and edited layers per synthetic entry: what located edits have.
const NEURONS_PER_LAYER: usize = 48;
const EDITED_LAYERS: usize = 2;

/// `count` groups made from `records`: copy 0 of each record as it is, later copies respelled.
pub fn synthetic_groups(records: &[BenchmarkRecord], count: usize) -> Result<Vec<EditGroup>> {
    let letters = letters_by_script(records);
    let mut groups = Vec::with_capacity(count);
    for i in 0..count {
        let Some(record) = records.get(i % records.len().max(1)) else { break };
        let mut group = EditGroup::from_benchmark(&format!("synthetic-{i}"), record, None)?;
        let copy = i / records.len();
        if copy > 0 {
            let mut rng = StdRng::seed_from_u64(i as u64);
            for d in &mut group.descriptors {
                let respelled = respell(&d.subject, &letters, &mut rng);
                d.prompt = d.prompt.replace(&d.subject, &respelled);
                let respelled_in = |texts: &[String]| texts.iter().map(|p| p.replace(&d.subject, &respelled)).collect();
                d.paraphrases = respelled_in(&d.paraphrases);
                d.generated_paraphrases = respelled_in(&d.generated_paraphrases);
                d.subject = respelled;
            }
        }
        groups.push(group);
    }
    Ok(groups)
}

/// Stores the `groups` that `cache` does not hold yet, with random update values and scope keys of
/// `config`'s shapes (keys as `encoder` reads questions, one per prompt), writing the index once;
/// `on_stored` hears each count stored.
pub fn fill_cache(
    cache: &mut EditCache,
    groups: &[EditGroup],
    config: &ModelConfig,
    encoder: &QuestionEncoder,
    on_stored: &mut dyn FnMut(usize),
) -> Result<()> {
    let settings = MethodSettings::default();
    let top = config.num_layers.saturating_sub(EDITED_LAYERS + 1);
    let mut stored = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        if cache.row(&entry_id(group)?).is_ok() {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(i as u64);
        let mut selected = BTreeMap::new();
        let mut layers = Vec::new();
        for layer in top..top + EDITED_LAYERS {
            let mut neurons: Vec<u32> =
                rand::seq::index::sample(&mut rng, config.ffn_size, NEURONS_PER_LAYER.min(config.ffn_size))
                    .into_iter()
                    .map(|n| n as u32)
                    .collect();
            neurons.sort_unstable();
            let values: Vec<f32> =
                (0..neurons.len() * config.hidden_size).map(|_| rng.random_range(-0.1..0.1)).collect();
            let delta = Tensor::from_vec(values, (neurons.len(), config.hidden_size), &Device::Cpu)?;
            selected.insert(layer, neurons.clone());
            layers.push(LayerUpdate { layer, neurons, delta });
        }
        let langs = group.descriptors.iter().map(|d| d.lang.clone()).collect();
        let located = LocatedNeurons { langs, layers: Vec::new(), selected, frequencies: BTreeMap::new() };
        let rows = group.descriptors.iter().map(|d| 1 + d.all_paraphrases().count()).sum::<usize>();
        let mut random_vectors = |rows: usize| {
            let values: Vec<f32> = (0..rows * config.hidden_size).map(|_| rng.random_range(-1.0..1.0)).collect();
            Tensor::from_vec(values, (rows, config.hidden_size), &Device::Cpu)
        };
        let keys = ScopeKeys {
            layer: encoder.layer(),
            read_from: Some(encoder.read_from()),
            keys: random_vectors(rows)?,
            other_relations: random_vectors(other_relation_questions(group).len())?,
        };
        let update = UpdateValues { layers };
        let edit = NewEntry {
            group,
            located: &located,
            update: &update,
            settings: &settings,
            loss_history: &[],
            scope_keys: &keys,
        };
        stored.push(cache.store_entry(edit)?);
        on_stored(i + 1);
    }
    cache.commit_stored(stored)
}

/// The letters of the records' subjects, by script.
fn letters_by_script(records: &[BenchmarkRecord]) -> HashMap<Script, Vec<char>> {
    let mut letters: HashMap<Script, Vec<char>> = HashMap::new();
    for (_, entry) in records.iter().flat_map(|r| r.iter()) {
        for c in entry.subject.chars().filter(|c| c.is_alphabetic()) {
            if let Some(script) = Script::of(c) {
                let pool = letters.entry(script).or_default();
                if !pool.contains(&c) {
                    pool.push(c);
                }
            }
        }
    }
    letters
}

/// `subject` with each letter replaced by a random letter of its script (spaces and punctuation kept).
fn respell(subject: &str, letters: &HashMap<Script, Vec<char>>, rng: &mut StdRng) -> String {
    subject
        .chars()
        .map(|c| match Script::of(c).and_then(|script| letters.get(&script)) {
            Some(pool) if c.is_alphabetic() => pool[rng.random_range(0..pool.len())],
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<BenchmarkRecord> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mzsre.sample.jsonl");
        crate::method::load_benchmark(&path).unwrap()
    }

    #[test]
    fn copies_name_subjects_of_their_own_in_the_same_script() {
        let records = records();
        let groups = synthetic_groups(&records, 3 * records.len()).unwrap();
        assert_eq!(groups.len(), 3 * records.len());
        let (first, copy) = (&groups[0], &groups[records.len()]);
        assert_eq!(first.descriptors[0].subject, records[0].iter().next().unwrap().1.subject);
        for (a, b) in first.descriptors.iter().zip(&copy.descriptors) {
            assert_ne!(a.subject, b.subject, "{}", a.lang);
            assert_eq!(a.subject.chars().count(), b.subject.chars().count());
            assert_eq!(Script::detect(&a.subject), Script::detect(&b.subject), "{} -> {}", a.subject, b.subject);
            if a.prompt.contains(&a.subject) {
                assert!(b.prompt.contains(&b.subject), "{}", b.prompt);
            }
        }
        let mut subjects: Vec<&str> = groups.iter().map(|g| g.descriptors[0].subject.as_str()).collect();
        subjects.sort_unstable();
        subjects.dedup();
        assert_eq!(subjects.len(), groups.len(), "every entry names its own subject");
    }
}

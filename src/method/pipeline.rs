//! One edit from start to finish — paraphrases, locate, optimize — exactly as the CLI, the TUI and the
//! evaluation harness run it, reporting progress as events so any front end can show it. Locating
//! alone ([`locate_group`]) is the first half of the same path.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::apply::CachedEdits;
use super::cache::{entry_id, EditStore};
use super::edit::{optimize, OptimizeOutcome, OptimizeStep};
use super::group::EditGroup;
use super::locate::{measure_keeping_states, select, LocatedNeurons, Measurements};
use super::prompts::fill_paraphrases;
use super::settings::MethodSettings;
use crate::runtime::{Model, PromptStates, Tokenizer};
use crate::Result;

/// The models one edit needs: a dense (differentiable) copy for locating and optimizing, and the model
/// that writes paraphrases when the settings ask for model-generated ones (the fast quantized one).
#[derive(Clone, Copy)]
pub struct EditModels<'a> {
    pub dense: &'a Model,
    pub paraphraser: &'a Model,
    pub tokenizer: &'a Tokenizer,
}

/// Progress of [`run_edit`], in order: paraphrases filled, neurons located, then one event per step.
pub enum EditEvent<'a> {
    Paraphrased(&'a EditGroup),
    Located(&'a LocatedNeurons),
    Step(&'a OptimizeStep),
}

/// The neurons located for a group.
pub struct Location {
    /// The group as located: with the paraphrases that were used.
    pub group: EditGroup,
    /// How every neuron fired, for selecting again with other settings (the TUI's live beta).
    pub measurements: Measurements,
    pub located: LocatedNeurons,
    /// Time measuring and selecting took (paraphrases not included).
    pub seconds: f64,
    /// The keys and values of the inputs measured, which optimizing reads its prompts from.
    pub states: PromptStates,
}

/// Checks that the group is complete and that each of its fields fits the model's input bound.
pub fn check_group(models: EditModels, group: &EditGroup) -> Result<()> {
    group.validate()?;
    group.check_token_lengths(models.tokenizer, models.dense.config().max_input_tokens())
}

/// The group as it is located and cached: checked against the model ([`check_group`]), its paraphrases
/// filled. Preparing it again changes nothing (the paraphrases are made the same way every time).
pub fn prepare_group(models: EditModels, mut group: EditGroup, settings: &MethodSettings) -> Result<EditGroup> {
    check_group(models, &group)?;
    fill_paraphrases(&mut group, &settings.paraphrases, Some((models.paraphraser, models.tokenizer)))?;
    Ok(group)
}

/// The id of the entry of `store` that holds the edit of `group` (as prepared, [`prepare_group`]) made
/// with `settings`, if there is one: that edit need not be computed again. An entry that cannot be
/// read (missing, damaged) holds no edit.
pub fn cached_edit(store: &dyn EditStore, group: &EditGroup, settings: &MethodSettings) -> Result<Option<String>> {
    let id = entry_id(group)?;
    let same = store.get(&id).is_ok_and(|entry| entry.group.same_facts(group) && entry.settings == *settings);
    Ok(same.then_some(id))
}

/// Checks the group against the model, fills its paraphrases ([`prepare_group`]) and locates its LAFNs
/// on the dense weights: the one way `lafn locate`, `lafn edit`, the TUI and eval locate, so they agree
/// on the layers.
pub fn locate_group(
    models: EditModels,
    group: EditGroup,
    settings: &MethodSettings,
    on_event: &mut dyn FnMut(EditEvent),
) -> Result<Location> {
    let group = prepare_group(models, group, settings)?;
    on_event(EditEvent::Paraphrased(&group));

    let started = Instant::now();
    let (measurements, states) = measure_keeping_states(models.dense, models.tokenizer, &group, &settings.locate)?;
    let located = select(&measurements, &settings.locate)?;
    let seconds = started.elapsed().as_secs_f64();
    on_event(EditEvent::Located(&located));
    Ok(Location { group, measurements, located, seconds, states })
}

/// Everything one edit produced, ready to cache or to save in a session.
pub struct EditRun {
    /// The group as edited: with the paraphrases that were used for locating.
    pub group: EditGroup,
    pub located: LocatedNeurons,
    pub outcome: OptimizeOutcome,
    pub locate_seconds: f64,
    pub optimize_seconds: f64,
}

impl EditRun {
    /// Stores this edit in `cached` (scope keys computed with `model`, the one that answers), returning
    /// its entry id.
    pub fn store(
        &self,
        cached: &mut CachedEdits,
        model: &Model,
        tokenizer: &Tokenizer,
        settings: &MethodSettings,
    ) -> Result<String> {
        let (update, history) = (&self.outcome.update, &self.outcome.history);
        cached.insert(model, tokenizer, &self.group, &self.located, update, settings, history)
    }
}

/// Fills paraphrases, locates the group's LAFNs ([`locate_group`]) and optimizes their update values.
/// Setting `cancel` stops the optimization at the next step (the outcome then says `Cancelled`).
pub fn run_edit(
    models: EditModels,
    group: EditGroup,
    settings: &MethodSettings,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(EditEvent),
) -> Result<EditRun> {
    let Location { group, located, seconds: locate_seconds, states, .. } =
        locate_group(models, group, settings, on_event)?;
    let started = Instant::now();
    let (edit, frame) = (&settings.edit, settings.frame);
    let outcome =
        optimize(models.dense, models.tokenizer, &group, &located, edit, frame, states, cancel, &mut |step| {
            on_event(EditEvent::Step(step))
        })?;
    let optimize_seconds = started.elapsed().as_secs_f64();
    Ok(EditRun { group, located, outcome, locate_seconds, optimize_seconds })
}

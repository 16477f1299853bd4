//! One edit from start to finish — paraphrases, locate, optimize — exactly as the CLI, the TUI and the
//! evaluation harness run it, reporting progress as events so any front end can show it.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::edit::{optimize, EditOutcome, EditStep};
use super::group::EditGroup;
use super::locate::{locate, LocatedNeurons};
use super::prompts::fill_paraphrases;
use super::settings::MethodSettings;
use crate::runtime::{Model, Tokenizer};
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
    Step(&'a EditStep),
}

/// Everything one edit produced, ready to cache or to save in a session.
pub struct EditRun {
    /// The group as edited: with the paraphrases that were used for locating.
    pub group: EditGroup,
    pub located: LocatedNeurons,
    pub outcome: EditOutcome,
    pub locate_seconds: f64,
    pub optimize_seconds: f64,
}

/// Fills paraphrases, locates the group's LAFNs and optimizes their update values.
/// Setting `cancel` stops the optimization at the next step (the outcome then says `Cancelled`).
pub fn run_edit(
    models: EditModels,
    mut group: EditGroup,
    settings: &MethodSettings,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(EditEvent),
) -> Result<EditRun> {
    group.validate()?;
    fill_paraphrases(&mut group, &settings.paraphrases, Some((models.paraphraser, models.tokenizer)))?;
    on_event(EditEvent::Paraphrased(&group));

    let started = Instant::now();
    let located = locate(models.dense, models.tokenizer, &group, &settings.locate)?;
    let locate_seconds = started.elapsed().as_secs_f64();
    on_event(EditEvent::Located(&located));

    let started = Instant::now();
    let outcome = optimize(models.dense, models.tokenizer, &group, &located, &settings.edit, cancel, &mut |step| {
        on_event(EditEvent::Step(step))
    })?;
    let optimize_seconds = started.elapsed().as_secs_f64();
    Ok(EditRun { group, located, outcome, locate_seconds, optimize_seconds })
}

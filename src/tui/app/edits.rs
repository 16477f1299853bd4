//! Edits pane state: the edit groups, the selected group and its form, the language picker. The Neurons
//! and Optimize panes show the selected group too.

use std::sync::Arc;

use super::language_picker::{Choice, LanguagePicker};
use super::queue::EditQueue;
use super::{App, Command, Deletion, InputTarget};
use crate::method::edit::OptimizeStep;
use crate::method::{EditDescriptor, EditGroup, LocatedNeurons, Measurements};
use crate::session::{GroupStatus, SessionGroup};
use crate::tui::layout::{scroll_offset, Pane};
use crate::tui::worker::{CacheLink, CacheVerdict, Job, Replaces};

/// An edit group with what the UI knows about it beyond the session.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// Stable id for worker results (indices shift when groups are removed).
    pub id: u64,
    pub saved: SessionGroup,
    /// Activation statistics from the last locate, for live beta changes (not saved).
    pub measurements: Option<Arc<Measurements>>,
}

impl GroupState {
    /// Changes the group through `change`, under the one rule for a changed group: when its facts change
    /// ([`EditGroup::same_facts`]), everything computed from them goes (located neurons, measurements,
    /// losses, the link to its cache entry) and it is a draft again. A new name changes nothing else.
    fn modify<T>(&mut self, change: impl FnOnce(&mut EditGroup) -> T) -> T {
        let before = self.saved.group.clone();
        let result = change(&mut self.saved.group);
        if !self.saved.group.same_facts(&before) {
            self.saved.status = GroupStatus::Draft;
            self.saved.located = None;
            self.saved.loss_history.clear();
            self.saved.cache_entry = None;
            self.measurements = None;
        }
        result
    }
}

/// One line of the edit-group form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef {
    Name,
    Lang(usize),
    Subject(usize),
    Prompt(usize),
    Target(usize),
    Paraphrase(usize, usize),
}

impl FieldRef {
    pub fn descriptor(self) -> Option<usize> {
        match self {
            FieldRef::Name => None,
            FieldRef::Lang(d) | FieldRef::Subject(d) | FieldRef::Prompt(d) | FieldRef::Target(d) => Some(d),
            FieldRef::Paraphrase(d, _) => Some(d),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EditsState {
    pub groups: Vec<GroupState>,
    pub group_selected: usize,
    /// The selected line of the form (an index into [`EditsState::form_fields`]).
    pub field_selected: usize,
    /// "Edit all" while it runs.
    pub queue: Option<EditQueue>,
    /// Open while the user picks a language to add.
    pub language_picker: Option<LanguagePicker>,
    next_group_id: u64,
}

impl EditsState {
    pub fn selected_group(&self) -> Option<&GroupState> {
        self.groups.get(self.group_selected)
    }

    fn selected_group_mut(&mut self) -> Option<&mut GroupState> {
        self.groups.get_mut(self.group_selected)
    }

    pub fn group_by_id(&self, id: u64) -> Option<&GroupState> {
        self.groups.iter().find(|g| g.id == id)
    }

    fn group_by_id_mut(&mut self, id: u64) -> Option<&mut GroupState> {
        self.groups.iter_mut().find(|g| g.id == id)
    }

    /// Languages of the selected group (two when there is none, for the layout).
    pub fn selected_language_count(&self) -> usize {
        self.selected_group().map_or(2, |g| g.saved.group.descriptors.len())
    }

    /// The fields of the selected group's form, in display order.
    pub fn form_fields(&self) -> Vec<FieldRef> {
        let Some(g) = self.selected_group() else { return Vec::new() };
        let mut fields = vec![FieldRef::Name];
        for (d, descriptor) in g.saved.group.descriptors.iter().enumerate() {
            fields.extend([FieldRef::Lang(d), FieldRef::Subject(d), FieldRef::Prompt(d), FieldRef::Target(d)]);
            fields.extend((0..descriptor.paraphrases.len()).map(|k| FieldRef::Paraphrase(d, k)));
        }
        fields
    }

    fn focused_field(&self) -> Option<FieldRef> {
        self.form_fields().get(self.field_selected).copied()
    }

    fn focus(&mut self, field: FieldRef) {
        self.field_selected = self.form_fields().iter().position(|f| *f == field).unwrap_or(0);
    }

    /// First group of the list shown in `rows` rows.
    pub fn group_offset(&self, rows: usize) -> usize {
        scroll_offset(self.group_selected, rows)
    }

    /// First form line shown in `rows` rows.
    pub fn form_offset(&self, rows: usize) -> usize {
        scroll_offset(self.field_selected, rows)
    }

    pub fn field_text(&self, field: FieldRef) -> String {
        let Some(g) = self.selected_group() else { return String::new() };
        let group = &g.saved.group;
        let d = |i: usize| &group.descriptors[i];
        match field {
            FieldRef::Name => group.name.clone(),
            FieldRef::Lang(i) => d(i).lang.clone(),
            FieldRef::Subject(i) => d(i).subject.clone(),
            FieldRef::Prompt(i) => d(i).prompt.clone(),
            FieldRef::Target(i) => d(i).target.clone(),
            FieldRef::Paraphrase(i, k) => d(i).paraphrases[k].clone(),
        }
    }

    pub(super) fn set_field(&mut self, field: FieldRef, text: String) {
        let Some(g) = self.selected_group_mut() else { return };
        g.modify(|group| {
            *match field {
                FieldRef::Name => &mut group.name,
                FieldRef::Lang(i) => &mut group.descriptors[i].lang,
                FieldRef::Subject(i) => &mut group.descriptors[i].subject,
                FieldRef::Prompt(i) => &mut group.descriptors[i].prompt,
                FieldRef::Target(i) => &mut group.descriptors[i].target,
                FieldRef::Paraphrase(i, k) => &mut group.descriptors[i].paraphrases[k],
            } = text
        });
    }

    pub(super) fn add_group(&mut self, group: EditGroup) {
        let saved = SessionGroup {
            group,
            status: GroupStatus::Draft,
            located: None,
            loss_history: Vec::new(),
            cache_entry: None,
        };
        self.add_saved(saved);
    }

    pub(super) fn add_saved(&mut self, saved: SessionGroup) {
        self.groups.push(GroupState { id: self.next_group_id, saved, measurements: None });
        self.next_group_id += 1;
    }

    pub(super) fn delete_group(&mut self, id: u64) {
        self.groups.retain(|g| g.id != id);
        self.group_selected = self.group_selected.min(self.groups.len().saturating_sub(1));
        self.field_selected = 0;
    }

    pub(super) fn remove_paraphrase(&mut self) {
        let Some(FieldRef::Paraphrase(d, k)) = self.focused_field() else { return };
        let Some(g) = self.selected_group_mut() else { return };
        g.modify(|group| {
            group.descriptors[d].paraphrases.remove(k);
        });
        self.field_selected = self.field_selected.min(self.form_fields().len() - 1);
    }

    /// Stores paraphrases the worker made; returns the message to show.
    pub(super) fn paraphrased(&mut self, group_id: u64, lang_index: usize, paraphrases: Vec<String>) -> Option<String> {
        let g = self.group_by_id_mut(group_id)?;
        let lang = g.saved.group.descriptors.get(lang_index)?.lang.clone();
        let message = format!("{} paraphrases for {lang}", paraphrases.len());
        g.modify(|group| group.descriptors[lang_index].paraphrases = paraphrases);
        Some(message)
    }

    /// Stores what the worker located; false when the group is gone.
    pub(super) fn located(
        &mut self,
        group_id: u64,
        group: EditGroup,
        located: LocatedNeurons,
        measurements: Arc<Measurements>,
    ) -> bool {
        let Some(g) = self.group_by_id_mut(group_id) else { return false };
        g.saved.group = group;
        g.saved.located = Some(located);
        g.saved.status = GroupStatus::Located;
        g.measurements = Some(measurements);
        true
    }

    /// One optimizer step: a new run starts at step 0.
    pub(super) fn step(&mut self, group_id: u64, step: OptimizeStep) {
        if let Some(g) = self.group_by_id_mut(group_id) {
            if step.step == 0 {
                g.saved.loss_history.clear();
            }
            g.saved.loss_history.push(step);
        }
    }
}

fn blank_descriptor(lang: &str) -> EditDescriptor {
    EditDescriptor {
        lang: lang.to_string(),
        subject: String::new(),
        prompt: String::new(),
        target: String::new(),
        paraphrases: Vec::new(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    }
}

impl App {
    pub(super) fn select_group(&mut self, index: usize) {
        let index = index.min(self.edits.groups.len().saturating_sub(1));
        if index != self.edits.group_selected {
            self.edits.group_selected = index;
            self.edits.field_selected = 0;
            self.neurons.show_layer(0);
        }
    }

    pub(super) fn import(&mut self, groups: Vec<EditGroup>) {
        let count = groups.len();
        for group in groups {
            self.edits.add_group(group);
        }
        self.edits.group_selected = self.edits.groups.len().saturating_sub(count);
        self.edits.field_selected = 0;
        self.message = format!("imported {count} edit group(s)");
    }

    pub(super) fn new_group(&mut self) {
        let number = self.edits.groups.len() + 1;
        let group = EditGroup { name: format!("group-{number}"), descriptors: vec![blank_descriptor("en")] };
        self.edits.add_group(group);
        self.select_group(self.edits.groups.len() - 1);
        self.edits.focus(FieldRef::Subject(0));
        self.open_input(InputTarget::Field(FieldRef::Subject(0)), "");
    }

    pub(super) fn edit_field(&mut self) {
        if let Some(field) = self.edits.focused_field() {
            let text = self.edits.field_text(field);
            self.open_input(InputTarget::Field(field), &text);
        }
    }

    pub(super) fn open_language_picker(&mut self) {
        if let Some(g) = self.edits.selected_group() {
            self.edits.language_picker = Some(LanguagePicker::new(g.id));
        }
    }

    /// Adds the picker's selected language to its group, unless the group has it already, and opens the
    /// new language's subject for typing.
    pub(super) fn pick_language(&mut self) {
        let Some(picker) = &self.edits.language_picker else { return };
        let Some(choice) = picker.selected_choice() else {
            self.message = format!("no language matches `{}`", picker.search.text());
            return;
        };
        // A session loaded meanwhile may have taken the group away.
        let Some(index) = self.edits.groups.iter().position(|g| g.id == picker.group_id) else {
            self.edits.language_picker = None;
            return;
        };
        if choice.is_in(&self.edits.groups[index].saved.group) {
            self.message = format!("the group has {} already", choice.label());
            return;
        }
        self.edits.language_picker = None;
        self.select_group(index);
        let d = self.edits.groups[index].modify(|group| {
            group.descriptors.push(blank_descriptor(choice.code()));
            group.descriptors.len() - 1
        });
        self.message = match choice {
            Choice::Known(_) => format!("added {}", choice.label()),
            Choice::Unknown(code) => format!(
                "warning: `{code}` is not in the language table (assets/languages.toml): its edits get generic \
                 templates (English questions, Q:/A: frames)"
            ),
        };
        self.edits.focus(FieldRef::Subject(d));
        self.open_input(InputTarget::Field(FieldRef::Subject(d)), "");
    }

    pub(super) fn remove_language(&mut self) {
        let Some(d) = self.edits.focused_field().and_then(FieldRef::descriptor) else { return };
        let Some(g) = self.edits.selected_group_mut() else { return };
        if g.saved.group.descriptors.len() > 1 {
            g.modify(|group| {
                group.descriptors.remove(d);
            });
            self.edits.field_selected = self.edits.field_selected.min(self.edits.form_fields().len() - 1);
        } else {
            self.error = Some("a group needs at least one language".into());
        }
    }

    pub(super) fn add_paraphrase(&mut self) {
        let Some(d) = self.edits.focused_field().and_then(FieldRef::descriptor) else { return };
        let Some(g) = self.edits.selected_group_mut() else { return };
        let field = g.modify(|group| {
            let paraphrases = &mut group.descriptors[d].paraphrases;
            paraphrases.push(String::new());
            FieldRef::Paraphrase(d, paraphrases.len() - 1)
        });
        self.edits.focus(field);
        self.open_input(InputTarget::Field(field), "");
    }

    pub(super) fn generate_paraphrases(&mut self) -> Vec<Command> {
        let Some(d) = self.edits.focused_field().and_then(FieldRef::descriptor) else { return Vec::new() };
        let Some(g) = self.edits.selected_group() else { return Vec::new() };
        let descriptor = g.saved.group.descriptors[d].clone();
        let mut settings = self.settings.paraphrases.clone();
        // At least one more than written, so that asking always adds one.
        settings.count = settings.count.max(descriptor.written_paraphrases().count() + 1);
        let job = Job::Paraphrase { group_id: g.id, lang_index: d, descriptor, settings };
        self.submit(job)
    }

    /// Locates (or edits) the selected group.
    pub(super) fn start(&mut self, edit: bool) -> Vec<Command> {
        let Some(g) = self.edits.selected_group() else {
            self.error = Some("no edit group: add one in the Edits pane (n) or import one (i)".into());
            return Vec::new();
        };
        if let Err(e) = g.saved.group.validate() {
            self.error = Some(format!("{e:#}"));
            return Vec::new();
        }
        if edit && self.edits.queue.is_some() {
            self.error = Some("edit all is running: cancel it first to edit one group".into());
            return Vec::new();
        }
        let group_id = g.id;
        if edit {
            let job = self.edit_job(group_id).expect("the selected group exists");
            self.optimize.editing_group = Some(group_id);
            self.pane = Pane::Optimize;
            self.submit(job)
        } else {
            let (group, settings) = (g.saved.group.clone(), Box::new(self.settings.clone()));
            self.submit(Job::Locate { group_id, group, settings })
        }
    }

    /// The job that edits group `id`. Its new entry replaces the group's earlier one, unless another
    /// group of this session links to it (the same edit made twice) or, as the worker checks, a saved
    /// session may need it.
    pub(super) fn edit_job(&self, id: u64) -> Option<Job> {
        let g = self.edits.group_by_id(id)?;
        let replaces = (g.saved.cache_entry.clone())
            .filter(|entry| {
                !self.edits.groups.iter().any(|other| other.id != id && other.saved.cache_entry.as_ref() == Some(entry))
            })
            .map(|entry| Replaces {
                entry,
                sessions_dir: self.sessions.dir.clone(),
                session: self.sessions.name.clone(),
            });
        Some(Job::Edit {
            group_id: id,
            group: g.saved.group.clone(),
            settings: Box::new(self.settings.clone()),
            replaces,
        })
    }

    /// Asks the worker whether each linked group's cache entry holds its edit: after a session loads (its
    /// links were saved, maybe with another cache) and after a model loads (another cache).
    pub(super) fn check_cache_entries(&mut self) -> Vec<Command> {
        let links: Vec<CacheLink> = self
            .edits
            .groups
            .iter()
            .filter_map(|g| {
                let entry_id = g.saved.cache_entry.clone()?;
                Some(CacheLink { group_id: g.id, entry_id, group: g.saved.group.clone() })
            })
            .collect();
        if links.is_empty() {
            return Vec::new();
        }
        self.submit(Job::CheckCacheEntries { links })
    }

    /// Takes the worker's verdicts: a group whose entry does not hold its edit is no longer cached,
    /// and the user is told why and what to do.
    pub(super) fn cache_entries_checked(&mut self, verdicts: Vec<CacheVerdict>) {
        let mut stale = Vec::new();
        for (link, verdict) in verdicts {
            let Some(g) = self.edits.group_by_id_mut(link.group_id) else { continue };
            if let Some(reason) = g.saved.take_cache_check(&link.entry_id, verdict.map(|entry| *entry)) {
                log::warn!("group `{}` is no longer cached: {reason}", g.saved.group.name);
                stale.push(format!(
                    "group `{}` is not cached any more, edit it again (e): {reason}",
                    g.saved.group.name
                ));
            }
        }
        if !stale.is_empty() {
            self.error = Some(stale.join("; "));
        }
    }

    pub(super) fn ask_delete_group(&mut self) {
        if let Some(g) = self.edits.selected_group() {
            self.message = format!("delete group `{}`? y/n", g.saved.group.name);
            self.confirm = Some(Deletion::Group(g.id));
        }
    }
}

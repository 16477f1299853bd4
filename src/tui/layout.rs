//! Where things are on the screen: the panes, the frame (tabs, body, status line) and each pane's areas.
//! Rendering draws into these areas and mouse clicks are hit-tested against them, so both read them
//! from here.

use ratatui::layout::{Constraint, Layout, Margin, Rect};

/// Smallest terminal the panes are laid out for.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Model,
    Edits,
    Neurons,
    Optimize,
    Chat,
    Sessions,
}

impl Pane {
    pub const ALL: [Pane; 6] = [Pane::Model, Pane::Edits, Pane::Neurons, Pane::Optimize, Pane::Chat, Pane::Sessions];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Model => "Model",
            Pane::Edits => "Edits",
            Pane::Neurons => "Neurons",
            Pane::Optimize => "Optimize",
            Pane::Chat => "Chat",
            Pane::Sessions => "Sessions",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|&p| p == self).expect("every pane is in ALL")
    }

    /// The pane `steps` tabs to the right, wrapping around (negative: to the left).
    pub fn cycle(self, steps: isize) -> Pane {
        let count = Pane::ALL.len() as isize;
        Pane::ALL[(self.index() as isize + steps).rem_euclid(count) as usize]
    }
}

pub struct FrameLayout {
    pub tabs: Rect,
    pub body: Rect,
    pub status: Rect,
}

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

pub fn frame(area: Rect) -> FrameLayout {
    let [tabs, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    FrameLayout { tabs, body, status }
}

pub fn tab_label(pane: Pane) -> String {
    format!(" {} {} ", pane.index() + 1, pane.title())
}

/// The pane whose tab is at `column`.
pub fn tab_at(tabs: Rect, column: u16) -> Option<Pane> {
    let mut x = tabs.x;
    for pane in Pane::ALL {
        let w = tab_label(pane).len() as u16 + 1;
        if column >= x && column < x + w {
            return Some(pane);
        }
        x += w;
    }
    None
}

/// First row shown so that `selected` is visible in `rows` rows.
pub fn scroll_offset(selected: usize, rows: usize) -> usize {
    selected.saturating_sub(rows.saturating_sub(1))
}

/// A popup of at most `width` x `height` in the middle of `body`.
pub fn centered(body: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (body.width.min(width), body.height.min(height));
    Rect::new(body.x + (body.width - width) / 2, body.y + (body.height - height) / 2, width, height)
}

/// Model pane: built-ins, the spec field, the loaded model, fetch progress.
pub fn model(body: Rect) -> [Rect; 4] {
    let [left, right] = Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(body);
    let [builtins, spec] = Layout::vertical([Constraint::Length(6), Constraint::Length(4)]).areas(left);
    let [info, progress] = Layout::vertical([Constraint::Min(5), Constraint::Length(4)]).areas(right);
    [builtins, spec, info, progress]
}

/// Edits pane: the group list and the selected group's form.
pub fn edits(body: Rect) -> [Rect; 2] {
    Layout::horizontal([Constraint::Length(28), Constraint::Min(20)]).areas(body)
}

/// The Edits pane's language picker: the popup, its search line and its list.
pub fn language_picker(body: Rect) -> [Rect; 3] {
    let popup = centered(body, 62, 20);
    let [search, list] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(popup.inner(Margin::new(1, 1)));
    [popup, search, list]
}

fn heatmap_width(langs: usize) -> u16 {
    (8 + 3 * langs as u16 + 7).max(24)
}

/// Neurons pane for a group of `langs` languages: summary line, heatmap, Jaccard matrix, LAFN list.
pub fn neurons(body: Rect, langs: usize) -> [Rect; 4] {
    let [info, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(body);
    let left_width = heatmap_width(langs).min(body.width / 2 + 6);
    let [heatmap, right] = Layout::horizontal([Constraint::Length(left_width), Constraint::Min(10)]).areas(rest);
    let [jaccard, lafns] = Layout::vertical([Constraint::Length(langs as u16 + 3), Constraint::Min(3)]).areas(right);
    [info, heatmap, jaccard, lafns]
}

/// Optimize pane: settings (`settings` rows), edit status, loss curves, probability curves.
pub fn optimize(body: Rect, settings: usize) -> [Rect; 4] {
    let [left, right] = Layout::horizontal([Constraint::Length(34), Constraint::Min(20)]).areas(body);
    let [settings, status] =
        Layout::vertical([Constraint::Length(settings as u16 + 2), Constraint::Min(3)]).areas(left);
    let [losses, probs] = Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(right);
    [settings, status, losses, probs]
}

/// Chat pane: the transcript and the input box.
pub fn chat(body: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(body)
}

/// Sessions pane: the list and the details.
pub fn sessions(body: Rect) -> [Rect; 2] {
    Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_cycle_both_ways() {
        assert_eq!(Pane::Model.cycle(-1), Pane::Sessions);
        assert_eq!(Pane::Sessions.cycle(1), Pane::Model);
        assert_eq!(Pane::Edits.cycle(1), Pane::Neurons);
    }
}

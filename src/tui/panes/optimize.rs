//! Optimize pane: settings, start/cancel, and live curves of the losses and each language's target
//! probability over the steps.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::edits::status_label;
use super::{draw_field, input_for, row, titled};
use crate::tui::app::optimize::Setting;
use crate::tui::app::{App, InputTarget};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};

/// Line colors of the languages' probability curves, reused in order.
const LANG_COLORS: [Color; 6] = [Color::Cyan, Color::Yellow, Color::Green, Color::Magenta, Color::Red, Color::Blue];

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [settings, status, losses, probs] = layout::optimize(body, Setting::ALL.len());
    render_settings(app, frame, settings);
    render_status(app, frame, status);
    render_curves(app, frame, losses, probs);
}

fn render_settings(app: &App, frame: &mut Frame, area: Rect) {
    let change = keymap::first_key(Scope::Pane(Pane::Optimize), Action::ChangeSetting);
    let title = format!("Settings ({change} changes)");
    let block = titled(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    for (i, setting) in Setting::ALL.iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.y + inner.height {
            break;
        }
        let label = format!("{:<17}", setting.label());
        match input_for(app, InputTarget::Setting(*setting)) {
            Some(input) => draw_field(frame, &input.field, inner.x, y, inner.width, &format!("> {label}")),
            None => frame.render_widget(
                row(i == app.optimize.selected, format!("{label}{}", setting.value(&app.settings))),
                Rect::new(inner.x, y, inner.width, 1),
            ),
        }
    }
}

/// The edited group's last step, and how the last edit stopped.
fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    match app.optimize_group() {
        Some(g) => {
            lines.push(Line::from(format!("group   {}", g.saved.group.name)));
            lines.push(Line::from(format!("status  {}", status_label(g.saved.status).0)));
            if let Some(last) = g.saved.loss_history.last() {
                lines.push(Line::from(format!("step    {}/{}", last.step, app.settings.edit.steps)));
                lines.push(Line::from(format!(
                    "loss    {:.4} (target {:.4}, KL {:.4})",
                    last.total_loss, last.target_loss, last.kl_loss
                )));
                let langs = g.saved.group.langs();
                for (lang, p) in langs.iter().zip(&last.target_probs) {
                    lines.push(Line::from(format!("P({lang})   {p:.3}")));
                }
            }
            if let Some(entry) = &g.saved.cache_entry {
                lines.push(Line::from(format!("cached  {entry}")));
            }
        }
        None => lines.push(Line::from("no edit group yet")),
    }
    if let Some((stop, seconds)) = app.optimize.last_stop {
        lines.push(Line::from(format!("last    {stop:?} in {seconds:.0} s")));
    }
    let running = app.optimize.editing_group.is_some();
    let key = |action| keymap::first_key(Scope::Pane(Pane::Optimize), action);
    lines.push(Line::from(if running {
        format!("{} cancels", key(Action::Cancel))
    } else {
        format!("{} starts the edit", key(Action::Edit))
    }));
    frame.render_widget(Paragraph::new(lines).block(titled("Edit")), area);
}

/// Loss curves and each language's target probability over the steps.
fn render_curves(app: &App, frame: &mut Frame, losses: Rect, probs: Rect) {
    let group = app.optimize_group();
    let history = group.map(|g| g.saved.loss_history.as_slice()).unwrap_or_default();
    let series = |f: fn(&crate::method::OptimizeStep) -> f32| -> Vec<(f64, f64)> {
        history.iter().map(|s| (s.step as f64, f(s) as f64)).collect()
    };
    let target = series(|s| s.target_loss);
    let kl = series(|s| s.kl_loss);
    let total = series(|s| s.total_loss);
    let max_step = (app.settings.edit.steps.max(history.last().map_or(0, |s| s.step))) as f64;
    let max_loss =
        history.iter().map(|s| s.total_loss.max(s.target_loss).max(s.kl_loss)).fold(0.0f32, f32::max).max(0.1) as f64;
    let datasets = vec![
        curve("L_target", Color::Cyan, &target),
        curve("L_kl", Color::Yellow, &kl),
        curve("total", Color::Green, &total),
    ];
    let chart = Chart::new(datasets)
        .block(titled("Losses"))
        .x_axis(axis("step", max_step, format!("{max_step:.0}")))
        .y_axis(axis("loss", max_loss, format!("{max_loss:.1}")));
    frame.render_widget(chart, losses);

    let langs: Vec<String> =
        group.map(|g| g.saved.group.langs().iter().map(|l| l.to_string()).collect()).unwrap_or_default();
    let prob_series: Vec<Vec<(f64, f64)>> = (0..langs.len())
        .map(|i| history.iter().filter_map(|s| s.target_probs.get(i).map(|p| (s.step as f64, *p as f64))).collect())
        .collect();
    let datasets: Vec<Dataset> = langs
        .iter()
        .zip(&prob_series)
        .enumerate()
        .map(|(i, (lang, data))| curve(lang.clone(), LANG_COLORS[i % LANG_COLORS.len()], data))
        .collect();
    let chart = Chart::new(datasets)
        .block(titled("P(target) per language"))
        .x_axis(axis("step", max_step, format!("{max_step:.0}")))
        .y_axis(axis("P", 1.0, "1".to_string()));
    frame.render_widget(chart, probs);
}

fn axis(title: &'static str, max: f64, max_label: String) -> Axis<'static> {
    Axis::default()
        .title(title)
        .bounds([0.0, max])
        .labels(vec!["0".to_string(), max_label])
        .style(Style::new().fg(Color::Gray))
}

/// One line of a chart, drawn in braille dots.
fn curve<'a>(name: impl Into<Line<'a>>, color: Color, data: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(data)
}

//! Neurons pane: per-layer heatmap of each language's factual neuron count |D_i^l| with the LAFN count,
//! the selected layer's language x language Jaccard matrix, and its LAFNs with per-language firing
//! frequencies and top tokens.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{heat, shade, titled};
use crate::method::LocatedNeurons;
use crate::tui::app::App;
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};
use crate::tui::text;

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [info, heatmap, jaccard, lafns] = layout::neurons(body, app.edits.selected_language_count());
    let Some((group, located)) =
        app.edits.selected_group().and_then(|g| g.saved.located.as_ref().map(|l| (&g.saved.group, l)))
    else {
        frame.render_widget(
            Paragraph::new(format!(
                "No located group: select one in Edits and press {} (locate) or {} (edit).",
                keymap::first_key(Scope::Pane(Pane::Edits), Action::Locate),
                keymap::first_key(Scope::Pane(Pane::Edits), Action::Edit)
            ))
            .block(titled("Neurons")),
            body,
        );
        return;
    };
    let live = app.edits.selected_group().is_some_and(|g| g.measurements.is_some());
    let selected_layers: Vec<String> = located.selected.keys().map(|l| l.to_string()).collect();
    // The edit acts only on questions whose scope score reaches the threshold (chat shows each score).
    let scope = app.settings.scope.threshold.map_or("off".to_string(), |t| format!(">= {t:.2}"));
    let key = |action| keymap::first_key(Scope::Pane(Pane::Neurons), action);
    let summary = format!(
        "{}  beta {:.2} ({}/{}{})  edit layers [{}]  {} LAFNs  scope {scope}",
        group.name,
        app.settings.locate.beta,
        key(Action::BetaUp),
        key(Action::BetaDown),
        if live { ", live".to_string() } else { format!("; {} measures", key(Action::Locate)) },
        selected_layers.join(","),
        located.neuron_count()
    );
    frame.render_widget(Line::from(text::truncate(&summary, info.width as usize)).bold(), info);
    render_heatmap(app, located, frame, heatmap);
    render_jaccard(app, located, frame, jaccard);
    render_lafns(app, located, frame, lafns);
}

fn render_heatmap(app: &App, located: &LocatedNeurons, frame: &mut Frame, area: Rect) {
    let block = titled("|D| per layer × language");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let max = located.layers.iter().flat_map(|l| l.factual_counts.iter().copied()).max().unwrap_or(0).max(1);
    let max_lafn = located.layers.iter().map(|l| l.lafn_count).max().unwrap_or(0).max(1);
    let mut header = vec![Span::raw("layer ")];
    header.extend(located.langs.iter().map(|l| Span::raw(format!("{:>3}", text::truncate(l, 3)))));
    header.push(Span::raw("  LAFN"));
    let mut lines = vec![Line::from(header).bold()];
    let rows = inner.height.saturating_sub(1) as usize;
    let offset = app.neurons.heatmap_offset(rows);
    for stats in located.layers.iter().skip(offset).take(rows) {
        let selected = stats.layer == app.neurons.layer_selected;
        let mark = match (selected, located.selected.contains_key(&stats.layer)) {
            (true, _) => ">",
            (false, true) => "*",
            _ => " ",
        };
        let mut spans = vec![Span::raw(format!("{mark}{:>4} ", stats.layer))];
        for &count in &stats.factual_counts {
            let share = count as f32 / max as f32;
            let cell: String = [' ', shade(share), shade(share)].iter().collect();
            spans.push(Span::styled(cell, Style::new().fg(heat(share))));
        }
        let lafn_share = stats.lafn_count as f32 / max_lafn as f32;
        spans.push(Span::styled(format!("  {:>4}", stats.lafn_count), Style::new().fg(heat(lafn_share))));
        let mut line = Line::from(spans);
        if selected {
            line = line.bg(Color::DarkGray);
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_jaccard(app: &App, located: &LocatedNeurons, frame: &mut Frame, area: Rect) {
    let Some(stats) = located.layers.get(app.neurons.layer_selected) else { return };
    let counts: Vec<String> =
        located.langs.iter().zip(&stats.factual_counts).map(|(l, c)| format!("{l} {c}")).collect();
    let title = text::truncate(
        &format!("Jaccard, layer {} (|D|: {})", stats.layer, counts.join(" ")),
        area.width.saturating_sub(4) as usize,
    );
    let block = titled(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Numbers when they fit, shades otherwise.
    let numeric = 4 + 4 * located.langs.len() <= inner.width as usize;
    let cell = if numeric { 4 } else { 2 };
    let mut header = vec![Span::raw("    ")];
    header.extend(located.langs.iter().map(|l| Span::raw(format!("{:>cell$}", text::truncate(l, cell - 1)))));
    let mut lines = vec![Line::from(header).bold()];
    for (lang, row) in located.langs.iter().zip(&stats.jaccard) {
        let mut spans = vec![Span::raw(format!("{:<4}", text::truncate(lang, 3)))];
        for &value in row {
            let content = match (numeric, value >= 0.995) {
                (true, true) => "1.0".to_string(),
                (true, false) => format!("{value:.2}").trim_start_matches('0').to_string(),
                (false, _) => shade(value).to_string(),
            };
            spans.push(Span::styled(format!("{content:>cell$}"), Style::new().fg(heat(value))));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_lafns(app: &App, located: &LocatedNeurons, frame: &mut Frame, area: Rect) {
    let lafns = app.layer_lafns();
    let key = |action| keymap::first_key(Scope::Pane(Pane::Neurons), action);
    let title = format!("LAFNs of the layer ({}/{})", key(Action::ScrollLafnsUp), key(Action::ScrollLafnsDown));
    let block = titled(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if lafns.is_empty() {
        let note = if app.edits.selected_group().is_some_and(|g| g.measurements.is_some()) {
            "no LAFNs in this layer at this beta".to_string()
        } else {
            format!("LAFNs of this layer are not stored: {} locates again", key(Action::Locate))
        };
        frame.render_widget(Paragraph::new(note), inner);
        return;
    }
    let per_lang = 8 + 4 * located.langs.len() + 20 <= inner.width as usize;
    let mut header = String::from("neuron ");
    if per_lang {
        header.extend(located.langs.iter().map(|l| format!("{:>4}", text::truncate(l, 3))));
    } else {
        header.push_str(" min mean");
    }
    header.push_str("  top tokens");
    let mut lines = vec![Line::from(header).bold()];
    let rows = inner.height.saturating_sub(1) as usize;
    let scroll = app.neurons.lafn_scroll.min(lafns.len().saturating_sub(1));
    for (neuron, freqs) in lafns.iter().skip(scroll).take(rows) {
        let mut line = format!("{neuron:>6} ");
        if per_lang {
            line.extend(freqs.iter().map(|f| format!("{:>4.0}", f * 100.0)));
        } else {
            let min = freqs.iter().copied().fold(f32::INFINITY, f32::min);
            let mean = freqs.iter().sum::<f32>() / freqs.len().max(1) as f32;
            line.push_str(&format!("{:>4.0}{:>5.0}", min * 100.0, mean * 100.0));
        }
        let tokens = match app.neurons.top_tokens.get(&(app.neurons.layer_selected, *neuron)) {
            Some(tokens) => tokens.iter().map(|t| format!("{:?}", t.trim_end())).collect::<Vec<_>>().join(" "),
            None => "…".to_string(),
        };
        line.push_str("  ");
        line.push_str(&tokens);
        lines.push(Line::from(text::truncate(&line, inner.width as usize)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

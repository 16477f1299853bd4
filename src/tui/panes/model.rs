//! Model pane: choose a built-in, a local path or an HF repo id; fetch and load progress; what is loaded.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Gauge, Paragraph};
use ratatui::Frame;

use super::{draw_field, input_for, percent, row, titled};
use crate::tui::app::{App, InputTarget};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [builtins, spec, info, progress] = layout::model(body);
    let lines: Vec<Line> =
        app.model.builtins.iter().enumerate().map(|(i, name)| row(i == app.model.selected, name.to_string())).collect();
    let load = keymap::first_key(Scope::Pane(Pane::Model), Action::LoadBuiltin);
    frame.render_widget(Paragraph::new(lines).block(titled(&format!("Built-in ({load} loads)"))), builtins);

    let type_spec = keymap::first_key(Scope::Pane(Pane::Model), Action::TypeModelSpec);
    frame.render_widget(titled(&format!("Path or HF repo id ({type_spec})")), spec);
    let inner = spec.inner(ratatui::layout::Margin::new(1, 1));
    match input_for(app, InputTarget::ModelSpec) {
        Some(input) => draw_field(frame, &input.field, inner.x, inner.y, inner.width, ""),
        None => frame.render_widget(
            Paragraph::new(vec![Line::from(format!("current: {}", app.model.spec))])
                .style(Style::new().fg(Color::Gray)),
            inner,
        ),
    }

    let text = match &app.model.info {
        Some(info) => {
            let c = &info.config;
            let types: Vec<String> = info.tensor_types.iter().map(|(t, n)| format!("{t}×{n}")).collect();
            let mut lines = vec![
                format!("model         {}", app.model.spec),
                format!("architecture  {}", c.arch.name()),
                format!("layers        {}", c.num_layers),
                format!("hidden size   {}", c.hidden_size),
                format!("FFN width     {} per layer ({} neurons)", c.ffn_size, c.ffn_size * c.num_layers),
                format!("parameters    {:.1} M", info.parameters as f64 / 1e6),
                format!("quant types   {}", types.join(", ")),
                format!("memory        {:.1} MB ({:?} weights)", info.weight_bytes as f64 / 1e6, info.mode),
                format!("fingerprint   {}", info.fingerprint),
                format!("file          {}", info.path.display()),
            ];
            if let Some(dir) = &app.model.cache_dir {
                lines.push(format!("edit cache    {} entries in {}", app.model.cache_rows.len(), dir.display()));
            }
            for entry in &app.model.cache_rows {
                lines.push(format!("  {}  [{}]  {}", entry.id, entry.langs.join(","), entry.subjects.join(" | ")));
            }
            lines
        }
        None => vec!["no model loaded yet".to_string()],
    };
    let lines: Vec<Line> = text.into_iter().map(Line::from).collect();
    frame.render_widget(Paragraph::new(lines).block(titled("Loaded model")), info);

    let block = titled("Fetch / load");
    match &app.jobs.busy {
        Some(busy) => {
            let label = match busy.bytes {
                Some((done, total)) => {
                    format!("{:.1}/{:.1} MB {:.0}%", done as f64 / 1e6, total as f64 / 1e6, percent(done, total))
                }
                None => busy.stage.clone(),
            };
            let ratio = busy.bytes.map_or(0.0, |(d, t)| percent(d, t) / 100.0);
            let inner = block.inner(progress);
            frame.render_widget(block, progress);
            let [stage, bar] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
            frame.render_widget(Line::from(format!("{}: {}", busy.label, busy.stage)), stage);
            frame.render_widget(
                Gauge::default().ratio(ratio).label(label).gauge_style(Style::new().fg(Color::Cyan)),
                bar,
            );
        }
        None => frame.render_widget(Paragraph::new("idle").block(block), progress),
    }
}

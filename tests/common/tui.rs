//! The TUI drawn as a user's terminal would show it, for snapshot tests.

use lafn::tui::app::{App, Event};
use lafn::tui::panes;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The app resized to `width` x `height` and drawn once: the screen as text.
pub fn render(app: &mut App, width: u16, height: u16) -> String {
    app.handle(Event::Resize(width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| panes::render(app, frame)).unwrap();
    terminal.backend().to_string()
}

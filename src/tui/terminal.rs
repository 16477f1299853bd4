//! The terminal while the UI runs: raw mode, alternate screen, mouse capture and bracketed paste, put
//! back on every exit path (return, error, panic).

use color_eyre::eyre::WrapErr;
use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};

use crate::Result;

/// Raw mode, alternate screen, mouse capture and bracketed paste while alive; restored when dropped.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter() -> Result<Self> {
        enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        let guard = Self;
        execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture, EnableBracketedPaste)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = execute!(std::io::stdout(), DisableBracketedPaste, DisableMouseCapture, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), crossterm::cursor::Show);
}

/// Restores the terminal before the panic hook in place (color-eyre's, installed by `main`) reports.
pub fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        log::error!("panic: {info}");
        report(info);
    }));
}

//! lafn: multilingual knowledge editing with language-agnostic factual neurons (LU-LAFNs).
//!
//! Layout: [`runtime`] runs transformer models with FFN hooks; [`fetch`] finds and downloads models;
//! [`method`] is LU-LAFNs itself (locate, edit, cache, retrieve); [`text`] is what it needs to know about
//! languages and how to compare texts in them; [`eval`] measures it on MzsRE / Bi-ZsRE; [`session`] saves
//! work; [`tui`] is the terminal UI over all of them; [`workers`] hands long work out to worker processes.

pub mod bench;
pub mod eval;
pub mod fetch;
pub mod method;
pub mod runtime;
pub mod session;
pub mod storage;
pub mod text;
pub mod tui;
pub mod workers;

/// Library-wide result type: errors carry context for the user.
pub type Result<T> = color_eyre::Result<T>;

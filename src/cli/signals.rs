//! Termination signals for the long-running subcommands (`lafn edit`, `lafn eval`): stop between
//! steps, keep what is finished.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use color_eyre::eyre::WrapErr;
use lafn::tui::event_loop::TerminationSignals;
use lafn::Result;

/// A flag the first SIGINT, SIGTERM or SIGHUP sets: `lafn edit`'s running group (or `lafn eval`'s
/// record) stops at its next optimization step and is not stored, and no other group or record starts.
/// A second signal ends the process at once. Nothing is half-written either way: every cache and
/// state write is atomic.
pub(super) fn cancel_on_signals() -> Result<Arc<AtomicBool>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .wrap_err("cannot start the signal handler")?;
    let mut signals = {
        let _context = runtime.enter();
        TerminationSignals::register()?
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let watch = move || {
        runtime.block_on(async move {
            let name = signals.next().await;
            flag.store(true, Ordering::Relaxed);
            eprintln!("{name}: stopping after the current step, storing nothing half-done (again: quit now)");
            signals.next().await;
            std::process::exit(130);
        })
    };
    std::thread::Builder::new().name("lafn-signals".into()).spawn(watch).wrap_err("cannot watch for signals")?;
    Ok(cancel)
}

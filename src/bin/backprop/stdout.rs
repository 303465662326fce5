//! Standard output that survives a closed pipe.
//!
//! `println!` panics when the reader has gone (`backprop train --json --out m | head -1`),
//! and the panic would lose work still to be done, such as writing the model. Every
//! command prints through [`outln!`](crate::outln) and [`out!`](crate::out) instead: once
//! the pipe is closed, further output is dropped, the command finishes its files, and the
//! process exits with status 141 (128 + SIGPIPE), as Unix tools killed by SIGPIPE do.
//!
//! `eprintln!` panics the same way when standard error is a closed pipe
//! (`backprop train 2>&1 | head -1`): messages go through [`errln!`](crate::errln), which
//! drops them once standard error is closed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Set on the MPI ranks other than 0, which print nothing (their errors end the job
/// through MPI, which prints them).
static MUTED: AtomicBool = AtomicBool::new(false);

/// Drops all further output of [`write`] and [`write_err`].
pub fn mute() {
    MUTED.store(true, Ordering::Relaxed);
}

/// The exit status of a run whose standard output was closed by its reader.
pub const BROKEN_PIPE_STATUS: u8 = 141;

/// Writes `args` to standard output and flushes; a closed pipe is remembered, not an error.
pub fn write(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) || MUTED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// Whether the reader of standard output (or standard error) has gone.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Writes `args` and a newline to standard error; a closed pipe is remembered, and any
/// other failure ignored: there is nowhere left to report it.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    if MUTED.load(Ordering::Relaxed) {
        return;
    }
    let mut err = std::io::stderr().lock();
    if let Err(e) = writeln!(err, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// `print!` that drops output once standard output is closed (see [`write`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
            .map_err(|e| anyhow::anyhow!("standard output: {e}"))?
    };
}

/// `println!` that drops output once standard output is closed (see [`write`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::out!("\n") };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
            .map_err(|e| anyhow::anyhow!("standard output: {e}"))?
    };
}

/// `eprintln!` that never panics: a closed standard error drops the message (see
/// [`write_err`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::stdout::write_err(format_args!($($arg)*))
    };
}

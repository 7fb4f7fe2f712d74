//! Showing a job's progress: a progress bar for a person, plain lines for a program.
//!
//! When stderr is a terminal, a person is watching: [`Progress`] draws an
//! [`indicatif`] bar there. Otherwise (a pipe, a file, a test) it prints one line per finished
//! chunk on stdout, `progress: <done>/<total> chunks`, flushed at once so that whoever reads
//! it sees each line as it happens. Events such as a lost worker ([`Progress::note`]) go to
//! stderr: a line above the bar, or a warning in the log.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar if stderr is a terminal, lines on stdout otherwise.
    #[default]
    Auto,
    /// Always the bar (drawn on stderr).
    Bar,
    /// Always the `progress: <done>/<total> chunks` lines on stdout.
    Lines,
    /// Nothing.
    Quiet,
}

/// The progress display of one job.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    show: Show,
}

#[derive(Debug)]
enum Show {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

impl Progress {
    /// A display for a job of `total` chunks.
    pub fn new(mode: ProgressMode, total: usize) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            mode => mode,
        };
        let show = match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::new(total as u64);
                let style = ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} chunks ({eta} left) {msg}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                Show::Bar(bar)
            }
            ProgressMode::Lines => Show::Lines,
            _ => Show::Quiet,
        };
        Progress { total, show }
    }

    /// `done` chunks of the job are finished.
    pub fn set(&self, done: usize) {
        match &self.show {
            Show::Bar(bar) => bar.set_position(done as u64),
            Show::Lines => crate::say(&format!("progress: {done}/{} chunks", self.total)),
            Show::Quiet => {}
        }
    }

    /// An event worth a line of its own (a lost worker, say): printed above the bar, where
    /// it stays while the bar goes on; without a bar (or one indicatif hides, stderr not being
    /// a terminal), logged as a warning (on stderr).
    pub fn note(&self, message: &str) {
        match &self.show {
            Show::Bar(bar) if !bar.is_hidden() => bar.println(message),
            _ => tracing::warn!("{message}"),
        }
    }

    /// The job ended: the bar is cleared away.
    pub fn finish(&self) {
        if let Show::Bar(bar) = &self.show {
            bar.finish_and_clear();
        }
    }
}

//! Log output: JSON lines when standard output is not a terminal (the journal, files), readable
//! lines on a terminal; the level from `log.level` (or `LOG_LEVEL`), overridable with `RUST_LOG`.
//!
//! Nothing logged here ever carries the shared secret, a checksum or a full callback URL with its
//! query: callers log hook ids and event ids.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{LogFormat, LogSettings};

/// pino's level names to tracing's. Libraries log at most warnings (their debug lines can carry
/// request URLs, and so checksums); `RUST_LOG` can still turn them up for a deep look.
pub fn filter_directive(level: &str) -> String {
    let level = match level.to_ascii_lowercase().as_str() {
        "fatal" => "error".to_string(),
        "silent" => "off".to_string(),
        other => other.to_string(),
    };
    let libraries = match level.as_str() {
        "error" | "off" => level.as_str(),
        _ => "warn",
    };
    format!("bbb_webhooks={level},{libraries}")
}

/// Installs the global subscriber. Returns an error string when the log file cannot be opened.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter_directive(&settings.level)));
    let to_file = settings.file;
    let writer: BoxMakeWriter = if to_file {
        if let Some(dir) = std::path::Path::new(&settings.filename).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("log.filename {}: {e}", settings.filename))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.filename)
            .map_err(|e| format!("log.filename {}: {e}", settings.filename))?;
        let file = std::sync::Arc::new(file);
        if settings.stdout {
            BoxMakeWriter::new(Tee(file))
        } else {
            BoxMakeWriter::new(move || FileWriter(file.clone()))
        }
    } else if settings.stdout {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        BoxMakeWriter::new(std::io::sink)
    };
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => to_file || !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests start several apps): keep the first.
    let _ = result;
    Ok(())
}

struct FileWriter(std::sync::Arc<std::fs::File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Writes each line to the file and to standard output.
struct Tee(std::sync::Arc<std::fs::File>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter(self.0.clone())
    }
}

struct TeeWriter(std::sync::Arc<std::fs::File>);

impl std::io::Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stdout().write_all(buf);
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Lets one line through per period; counts the rest so the next line can say how many were
/// held back. For inputs that can repeat thousands of times a second (malformed messages).
pub struct RateLimit {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    pub const fn new(period: Duration) -> Self {
        RateLimit {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    pub fn check(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.period => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// The text a panic carried, when it was a string (what `panic!` gives).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_what_it_holds_back() {
        let r = RateLimit::new(Duration::from_secs(60));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r2 = RateLimit::new(Duration::from_millis(0));
        assert_eq!(r2.check(), Some(0));
        assert_eq!(r2.check(), Some(0));
    }

    #[test]
    fn pino_levels_are_understood() {
        assert_eq!(filter_directive("fatal"), "bbb_webhooks=error,error");
        assert_eq!(filter_directive("silent"), "bbb_webhooks=off,off");
        assert_eq!(filter_directive("INFO"), "bbb_webhooks=info,warn");
        assert_eq!(filter_directive("trace"), "bbb_webhooks=trace,warn");
    }
}

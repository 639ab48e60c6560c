//! `bbb-webhooks map [FILE]`: what raw messages become, one JSON event per line, with in-memory
//! state. The way to see (and test) the mapper without Redis or HTTP.
//!
//! It owns the subcommand's arguments, reading lines and printing events. The mapping itself is
//! [`bbb_webhooks::mapping`]'s. It reads the configuration `serve` reads (`--config`, the
//! environment), so it maps as the service would (`hooks.includeMeetingMetadata`); it signs
//! nothing, so no shared secret is needed.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use bbb_webhooks::config::{self, ConfigSources};
use bbb_webhooks::mapping::Mapper;

#[derive(clap::Args)]
pub struct Args {
    /// File of messages; standard input when absent.
    file: Option<PathBuf>,
    /// Print one JSON array per input line (`[]` for none) instead of one event per line.
    #[arg(long)]
    per_message: bool,
}

/// Exit status 2 when a line could not be mapped.
pub fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = config::load_without_secret(&ConfigSources::from_process(config_file))?.settings;
    let mapper = Mapper::default().with_meeting_metadata(settings.hooks.include_meeting_metadata);
    let layout = if args.per_message {
        Layout::PerMessage
    } else {
        Layout::Events
    };
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let failures = match args.file {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut input = std::io::BufReader::new(f);
            map_lines(mapper, &mut input, &mut out, &mut err, layout)?
        }
        None => map_lines(
            mapper,
            &mut std::io::stdin().lock(),
            &mut out,
            &mut err,
            layout,
        )?,
    };
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// How `map` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One event per line.
    Events,
    /// One JSON array per input line (`[]` when it produces nothing): the fixtures' format.
    PerMessage,
}

/// Maps every line of `input` (blank lines skipped) and writes the events to `out`; problems go
/// to `err` with their line number. Returns how many lines could not be mapped.
fn map_lines(
    mut mapper: Mapper,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    layout: Layout,
) -> std::io::Result<usize> {
    let mut failures = 0;
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let events = match mapper.map(trimmed, bbb_webhooks::time::now_ms()) {
            Ok(events) => events,
            Err(e) => {
                failures += 1;
                writeln!(err, "line {number}: {e}")?;
                Vec::new()
            }
        };
        match layout {
            Layout::Events => {
                for e in events {
                    writeln!(out, "{}", e.json)?;
                }
            }
            Layout::PerMessage => {
                let texts: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
                writeln!(out, "[{}]", texts.join(","))?;
            }
        }
    }
    Ok(failures)
}

//! `bbb-webhooks map [FILE]`: what raw messages become, one JSON event per line, with in-memory
//! state. The way to see (and test) the mapper without Redis or HTTP.

use std::io::{BufRead, Write};

use bbb_webhooks::mapping::Mapper;

/// How `map` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One event per line.
    Events,
    /// One JSON array per input line (`[]` when it produces nothing): the fixtures' format.
    PerMessage,
}

/// Maps every line of `input` (blank lines skipped) and writes the events to `out`; problems go
/// to `err` with their line number. Returns how many lines could not be mapped.
pub fn run(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    layout: Layout,
) -> std::io::Result<usize> {
    let mut mapper = Mapper::default();
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

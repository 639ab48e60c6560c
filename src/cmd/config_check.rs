//! `bbb-webhooks config check`: the effective configuration, where each value came from.

use std::io::Write;

use bbb_webhooks::config::LoadedConfig;

/// Writes one line per setting (`key = value  (source)`), then the notes.
pub fn print(config: &LoadedConfig, out: &mut dyn Write) -> std::io::Result<()> {
    let lines = config.describe();
    let width = lines.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    for (key, value, source) in lines {
        writeln!(out, "{key:width$} = {value}  ({source})")?;
    }
    for note in &config.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

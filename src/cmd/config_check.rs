//! `bbb-webhooks config check`: the effective configuration, where each value came from.
//!
//! It owns the `config` subcommand's arguments and the printout. Loading, layering and validating
//! the configuration (and so every error message about it) are [`bbb_webhooks::config`]'s.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bbb_webhooks::config::{self, ConfigSources, LoadedConfig};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the effective configuration (secrets redacted) and where each value came from;
    /// exit non-zero when it is invalid.
    Check,
}

pub fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Command::Check = args.command;
    let loaded = config::load(&ConfigSources::from_process(config_file))?;
    print(&loaded, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one line per setting (`key = value  (source)`), then every warning `serve` would log.
fn print(config: &LoadedConfig, out: &mut dyn Write) -> std::io::Result<()> {
    let lines = config.describe();
    let width = lines.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    for (key, value, source) in lines {
        writeln!(out, "{key:width$} = {value}  ({source})")?;
    }
    for note in config.warnings() {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

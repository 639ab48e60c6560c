//! `bbb-webhooks config check`: the files looked for, the effective configuration and where
//! each value came from, the notes `serve` would log, and what is wrong, if anything.
//!
//! It owns the `config` subcommand's arguments and the printout. Loading, layering and validating
//! the configuration (and so every error message about it) are [`bbb_webhooks::config`]'s. The
//! table is printed even when the configuration is unusable, so the operator sees the value at
//! fault beside the others; the error itself goes to standard error and the exit status is 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bbb_webhooks::config::{self, ConfigError, ConfigSources, Inspection, Needs};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the files looked for, every effective setting (secrets redacted) with where its
    /// value came from, and the notes the service would log; exit non-zero when the
    /// configuration is invalid.
    Check,
}

pub fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Command::Check = args.command;
    let inspection = config::inspect(&ConfigSources::from_process(config_file), Needs::Secret);
    print(&inspection, &mut std::io::stdout().lock())?;
    match inspection.result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// The files, then one line per setting (`key = value  (source)`), then the notes.
fn print(inspection: &Inspection, out: &mut dyn Write) -> std::io::Result<()> {
    let (properties, yaml): (Vec<_>, Vec<_>) = inspection.files.iter().partition(|f| f.properties);
    let path_width = inspection
        .files
        .iter()
        .map(|f| f.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    let groups = [
        ("Configuration files, later ones win:", &yaml),
        (
            "BigBlueButton's properties, for a shared secret or domain that nothing above sets:",
            &properties,
        ),
    ];
    for (heading, files) in groups {
        writeln!(out, "{heading}")?;
        for f in files {
            writeln!(
                out,
                "  {:path_width$}  {}",
                f.path.display().to_string(),
                f.status
            )?;
        }
    }
    writeln!(out)?;

    let faulty = match &inspection.result {
        Err(ConfigError::Invalid { key, .. }) => Some(key.as_str()),
        Err(ConfigError::NoSecret) => Some("bbb.sharedSecret"),
        _ => None,
    };
    let width = inspection
        .values
        .iter()
        .map(|(k, _, _)| k.len())
        .max()
        .unwrap_or(0);
    for (key, value, source) in &inspection.values {
        let mark = if Some(key.as_str()) == faulty {
            "  <- invalid"
        } else {
            ""
        };
        writeln!(out, "{key:width$} = {value}  ({source}){mark}")?;
    }
    for note in &inspection.warnings {
        writeln!(out, "note: {note}")?;
    }
    for (path, keys) in &inspection.skipped {
        writeln!(
            out,
            "skipped: {}: {} (what BigBlueButton's bbb-webhooks package writes; no use here, \
             nothing to do)",
            path.display(),
            keys.join(", ")
        )?;
    }
    Ok(())
}

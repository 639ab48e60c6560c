//! `bbb-webhooks checksum URL`: signs any BigBlueButton API URL (the hooks calls and the rest)
//! the way bbb-web and this service check it.
//!
//! It owns the subcommand's arguments and how a URL is taken apart and put back together. The
//! checksum itself is [`bbb_webhooks::api::checksum`]'s, the secret and API path come from the
//! configuration unless `--secret` is given.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use bbb_webhooks::api::checksum;
use bbb_webhooks::config::{self, ChecksumAlgorithm, ConfigSources};

#[derive(clap::Args)]
pub struct Args {
    /// e.g. https://bbb.example.com/bigbluebutton/api/hooks/list?meetingID=m1
    url: String,
    /// sha1, sha256, sha384 or sha512 (the checksum's length tells bbb-web which).
    #[arg(long, default_value = "sha1")]
    algorithm: String,
    /// Use this secret instead of the configured one.
    #[arg(long, env = "SHARED_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

pub fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let algorithm = ChecksumAlgorithm::from_name(&args.algorithm).with_context(|| {
        format!(
            "unknown algorithm {:?} (sha1, sha256, sha384, sha512)",
            args.algorithm
        )
    })?;
    let (secret, api_path) = match args.secret {
        Some(s) => (s, "/bigbluebutton/api".to_string()),
        None => {
            let loaded = config::load(&ConfigSources::from_process(config_file))?;
            (
                loaded.settings.secret().to_string(),
                loaded.settings.bbb.api_path.clone(),
            )
        }
    };
    println!("{}", sign_url(&args.url, &api_path, &secret, algorithm)?);
    Ok(ExitCode::SUCCESS)
}

/// `url` with `checksum=…` for its call and query (an existing checksum is replaced).
fn sign_url(
    url: &str,
    api_path: &str,
    secret: &str,
    algorithm: ChecksumAlgorithm,
) -> anyhow::Result<String> {
    let (before, query) = url.split_once('?').unwrap_or((url, ""));
    let marker = format!("{}/", api_path.trim_end_matches('/'));
    let call = before
        .find(&marker)
        .map(|at| &before[at + marker.len()..])
        .filter(|c| !c.is_empty())
        .with_context(|| format!("the URL has no API call after {marker}"))?;
    if url.contains('#') {
        bail!("the URL must not have a fragment");
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("checksum"))
        .collect();
    let query = kept.join("&");
    let c = checksum::sign(call, &query, secret, algorithm);
    Ok(if query.is_empty() {
        format!("{before}?checksum={c}")
    } else {
        format!("{before}?{query}&checksum={c}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_examples() {
        let url = "https://bbb.example.com/bigbluebutton/api/hooks/create?callbackURL=https%3A%2F%2Fapp.example.com%2Fhook&meetingID=my-meeting&eventID=meeting-created,user-joined";
        assert_eq!(
            sign_url(
                url,
                "/bigbluebutton/api",
                "mysharedsecret",
                ChecksumAlgorithm::Sha1
            )
            .unwrap(),
            format!("{url}&checksum=819da0e0ea95358293f470c17ffe4b83968cf179")
        );
        assert_eq!(
            sign_url(
                "http://h/bigbluebutton/api/hooks/list?checksum=old",
                "/bigbluebutton/api",
                "mysharedsecret",
                ChecksumAlgorithm::Sha1
            )
            .unwrap(),
            "http://h/bigbluebutton/api/hooks/list?checksum=a625f1b26379584958c429cfd6b5d42cf5f57bbb"
        );
        assert!(
            sign_url(
                "http://h/other",
                "/bigbluebutton/api",
                "s",
                ChecksumAlgorithm::Sha1
            )
            .is_err()
        );
    }
}

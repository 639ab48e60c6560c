//! `bbb-webhooks checksum URL`: signs any BigBlueButton API URL (the hooks calls and the rest)
//! the way bbb-web and this service check it.

use anyhow::{Context, bail};

use bbb_webhooks::api::checksum;
use bbb_webhooks::config::ChecksumAlgorithm;

/// `url` with `checksum=…` for its call and query (an existing checksum is replaced).
pub fn sign_url(
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

//! The API checksum: `H(method + query without checksum + secret)`, as bbb-web and
//! bbb-webhooks compute it, with the algorithm told by the checksum's length.
//!
//! This module owns reading a request's checksum (the parameter, the method, the query without
//! it) and the comparison. The hashing itself is [`crate::checksum`]'s.

use subtle::ConstantTimeEq;

use crate::checksum::{ChecksumAlgorithm, api_checksum};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("no checksum parameter")]
    Missing,
    #[error("the checksum parameter is repeated")]
    Repeated,
    #[error("a checksum of {0} characters matches no algorithm")]
    UnknownLength(usize),
    #[error("{0} checksums are not accepted here")]
    Unsupported(&'static str),
    #[error("the checksum does not match")]
    Mismatch,
}

/// Checks the request's checksum.
///
/// * `path` is the request path as sent; the method is what follows `api_path + "/"`
///   (`hooks/create`), case and trailing slash as sent.
/// * `raw_query` is the query string as received, percent-encoding untouched; the hashed query
///   is it with the `checksum` parameter taken out.
pub fn verify(
    path: &str,
    raw_query: &str,
    secret: &str,
    api_path: &str,
    supported: &[ChecksumAlgorithm],
) -> Result<(), ChecksumError> {
    let mut given = None;
    let mut kept = Vec::new();
    for pair in raw_query.split('&') {
        let name = pair.split('=').next().unwrap_or_default();
        if decoded(name) == "checksum" {
            if given.is_some() {
                return Err(ChecksumError::Repeated);
            }
            given = Some(decoded(pair.split_once('=').map_or("", |(_, v)| v)));
        } else {
            kept.push(pair);
        }
    }
    let given = given
        .filter(|c| !c.is_empty())
        .ok_or(ChecksumError::Missing)?
        .to_ascii_lowercase();
    let algorithm = ChecksumAlgorithm::from_hex_len(given.len())
        .ok_or(ChecksumError::UnknownLength(given.len()))?;
    if !supported.contains(&algorithm) {
        return Err(ChecksumError::Unsupported(algorithm.name()));
    }
    let query = if raw_query.is_empty() {
        String::new()
    } else {
        kept.join("&")
    };
    let method = path.get(api_path.len() + 1..).unwrap_or("");
    let expected = api_checksum(algorithm, method, &query, secret);
    if expected.as_bytes().ct_eq(given.as_bytes()).into() {
        Ok(())
    } else {
        Err(ChecksumError::Mismatch)
    }
}

fn decoded(text: &str) -> String {
    form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The checksum a client sends for `hooks/<call>` with this query (without `checksum`).
pub fn sign(call: &str, query: &str, secret: &str, algorithm: ChecksumAlgorithm) -> String {
    api_checksum(algorithm, call, query, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "/bigbluebutton/api";
    const ALL: [ChecksumAlgorithm; 4] = ChecksumAlgorithm::ALL;

    #[test]
    fn the_reference_examples() {
        let q = "callbackURL=https%3A%2F%2Fapp.example.com%2Fhook&meetingID=my-meeting&eventID=meeting-created,user-joined";
        let sha1 = "819da0e0ea95358293f470c17ffe4b83968cf179";
        assert_eq!(
            sign("hooks/create", q, "mysharedsecret", ChecksumAlgorithm::Sha1),
            sha1
        );
        assert_eq!(
            sign(
                "hooks/create",
                q,
                "mysharedsecret",
                ChecksumAlgorithm::Sha256
            ),
            "af99e2fdd3366b637791f51c1b8b0cae6221b0900d8351ae0c8a07e923f73a78"
        );
        let path = "/bigbluebutton/api/hooks/create";
        assert_eq!(
            verify(
                path,
                &format!("{q}&checksum={sha1}"),
                "mysharedsecret",
                API,
                &ALL
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                path,
                &format!("checksum={sha1}&{q}"),
                "mysharedsecret",
                API,
                &ALL
            ),
            Ok(())
        );
        let list = "a625f1b26379584958c429cfd6b5d42cf5f57bbb";
        assert_eq!(
            verify(
                "/bigbluebutton/api/hooks/list",
                &format!("checksum={list}"),
                "mysharedsecret",
                API,
                &ALL
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                "/bigbluebutton/api/hooks/list",
                &format!("checksum={}", list.to_uppercase()),
                "mysharedsecret",
                API,
                &ALL
            ),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let p = "/bigbluebutton/api/hooks/list";
        assert_eq!(verify(p, "", "s", API, &ALL), Err(ChecksumError::Missing));
        assert_eq!(
            verify(p, "checksum=", "s", API, &ALL),
            Err(ChecksumError::Missing)
        );
        assert_eq!(
            verify(p, "checksum=abc", "s", API, &ALL),
            Err(ChecksumError::UnknownLength(3))
        );
        assert_eq!(
            verify(p, "checksum=a&checksum=b", "s", API, &ALL),
            Err(ChecksumError::Repeated)
        );
        let sha1 = sign("hooks/list", "", "s", ChecksumAlgorithm::Sha1);
        assert_eq!(
            verify(
                p,
                &format!("checksum={sha1}"),
                "s",
                API,
                &[ChecksumAlgorithm::Sha256]
            ),
            Err(ChecksumError::Unsupported("sha1"))
        );
        assert_eq!(
            verify(p, &format!("checksum={sha1}"), "other", API, &ALL),
            Err(ChecksumError::Mismatch)
        );
    }
}

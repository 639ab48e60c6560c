//! Absolute http(s) URLs in the configuration (`hooks.permanentURLs`, `bbb.apiUrl`).
//!
//! This module owns the check that a configured URL is an absolute http(s) URL and keeps both
//! the parsed URL and the text as written. It does not decide what a URL is used for: the text as
//! written is a permanent hook's identity (its id is derived from it and it is stored in Redis as
//! is, as bbb-webhooks 3.x does), so it is never replaced by the parsed URL's normal form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An absolute `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    written: String,
    parsed: url::Url,
}

impl HttpUrl {
    /// The URL exactly as configured.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The URL parsed (in its normal form, which may differ from [`HttpUrl::as_str`]).
    pub fn url(&self) -> &url::Url {
        &self.parsed
    }
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match url::Url::parse(text) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                Ok(HttpUrl {
                    written: text.to_string(),
                    parsed,
                })
            }
            _ => Err(format!("{text:?} is not an absolute http(s) URL")),
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_urls_keep_their_text() {
        let u: HttpUrl = "https://LMS.Example.com".parse().unwrap();
        assert_eq!(u.as_str(), "https://LMS.Example.com");
        assert_eq!(u.url().as_str(), "https://lms.example.com/");
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!("https://LMS.Example.com")
        );
        assert!("http://10.0.0.1:8080/a?b=c".parse::<HttpUrl>().is_ok());
        for bad in ["ftp://x", "relative/x", "", "mailto:a@b", "http:/"] {
            let err = bad.parse::<HttpUrl>().unwrap_err();
            assert_eq!(err, format!("{bad:?} is not an absolute http(s) URL"));
        }
    }
}

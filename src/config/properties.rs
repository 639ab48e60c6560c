//! BigBlueButton's own properties files: the fallback for the shared secret and the domain.

use std::collections::HashMap;
use std::path::PathBuf;

/// Where BigBlueButton keeps its settings; earlier files win.
pub const DEFAULT_PROPERTIES_FILES: [&str; 2] = [
    "/etc/bigbluebutton/bbb-web.properties",
    "/usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties",
];

/// What the properties files tell us, and which file said it.
#[derive(Debug, Default, PartialEq)]
pub struct BbbProperties {
    pub secret: Option<(String, PathBuf)>,
    pub domain: Option<(String, PathBuf)>,
}

/// Reads `securitySalt` and the host of `bigbluebutton.web.serverURL`; the first file that has a
/// key wins. Missing or unreadable files are skipped.
pub fn read(files: &[PathBuf]) -> BbbProperties {
    let mut found = BbbProperties::default();
    for path in files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let props = parse(&text);
        if found.secret.is_none()
            && let Some(salt) = props.get("securitySalt").filter(|s| !s.is_empty())
        {
            found.secret = Some((salt.clone(), path.clone()));
        }
        if found.domain.is_none()
            && let Some(host) = props
                .get("bigbluebutton.web.serverURL")
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(String::from))
        {
            found.domain = Some((host, path.clone()));
        }
    }
    found
}

/// Java properties, the subset BigBlueButton writes: `key=value` or `key: value` lines, `#` and
/// `!` comments.
fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_file_with_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("bbb-web.properties");
        let share = dir.path().join("bigbluebutton.properties");
        std::fs::write(&etc, "# overrides\nsecuritySalt=etcsecret\n").unwrap();
        std::fs::write(
            &share,
            "securitySalt=sharesecret\nbigbluebutton.web.serverURL=https://bbb.example.com\n",
        )
        .unwrap();
        let found = read(&[etc.clone(), share.clone(), dir.path().join("missing")]);
        assert_eq!(found.secret, Some(("etcsecret".into(), etc)));
        assert_eq!(found.domain, Some(("bbb.example.com".into(), share)));
    }

    #[test]
    fn no_files_no_values() {
        assert_eq!(
            read(&[PathBuf::from("/nonexistent/x")]),
            BbbProperties::default()
        );
    }
}

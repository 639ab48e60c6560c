//! Parsing of scalar configuration values written as text (environment variables, query strings).

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case. Anything else is `None`.
///
/// bbb-webhooks 3.x treats every non-empty string as true, so `BEARER_AUTH=false` turned bearer
/// auth *on*; here it means false.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A list written as a JSON array (`["a","b"]`) or as a comma list (`a, b`); items are trimmed and
/// empty items dropped. JSON items that are not strings keep their JSON text.
pub fn parse_list(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("not a JSON array: {e}"))?;
        return Ok(items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .filter(|s| !s.trim().is_empty())
            .collect());
    }
    Ok(trimmed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_mean_what_they_say() {
        for t in ["true", "TRUE", "1", "yes", "Yes", "on", " true "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "0", "no", "NO", "off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "maybe", "2", "truee"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_from_json_and_comma_forms() {
        assert_eq!(parse_list(r#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_list("a, b ,,c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_list("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_list("[]").unwrap(), Vec::<String>::new());
        assert!(parse_list("[\"a\"").is_err());
    }
}

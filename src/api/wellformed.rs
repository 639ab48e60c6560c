//! Test-only: a small XML 1.0 well-formedness check, the oracle of the API's "every answer is
//! well-formed" tests (unit and property tests here, and `tests/it`, which includes this file).
//!
//! It owns only what the API's answers can contain: one root element, start and end tags without
//! attributes (`<a>`, `</a>`, `<a/>`), character data, CDATA sections and entity references.
//! It checks that tags nest and match, that every character is an XML 1.0 `Char`, that `<` and
//! `&` only start markup and references (predefined or numeric, to a `Char`), that `]]>` never
//! appears in text and that CDATA sections close. A declaration, comments, processing
//! instructions, a DOCTYPE or attributes are refused: the API writes none, so one would be a bug.
//! It does not validate anything beyond well-formedness.

/// XML 1.0's `Char` production (written again here so that the oracle does not share the code
/// under test).
fn is_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}'
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

/// `Ok` when `xml` is a well-formed document of the kind described above; else what is wrong
/// and where (a byte offset).
pub fn check(xml: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut seen_root = false;
    let mut i = 0;
    while i < xml.len() {
        let rest = &xml[i..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        if c == '<' {
            if let Some(body) = rest.strip_prefix("<![CDATA[") {
                if open.is_empty() {
                    return Err(format!("{i}: CDATA outside the root element"));
                }
                let end = body
                    .find("]]>")
                    .ok_or_else(|| format!("{i}: unclosed CDATA section"))?;
                if let Some(bad) = body[..end].chars().find(|&c| !is_char(c)) {
                    return Err(format!("{i}: {bad:?} in a CDATA section"));
                }
                i += "<![CDATA[".len() + end + "]]>".len();
                continue;
            }
            let close = rest.find('>').ok_or_else(|| format!("{i}: unclosed tag"))?;
            let tag = &rest[1..close];
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(top) if top == name => {}
                    Some(top) => return Err(format!("{i}: </{name}> closes <{top}>")),
                    None => return Err(format!("{i}: </{name}> closes nothing")),
                }
            } else {
                let (name, empty) = match tag.strip_suffix('/') {
                    Some(name) => (name, true),
                    None => (tag, false),
                };
                let mut chars = name.chars();
                if !chars.next().is_some_and(is_name_start) || !chars.all(is_name_char) {
                    return Err(format!(
                        "{i}: <{tag}> is not a start tag without attributes"
                    ));
                }
                if open.is_empty() {
                    if seen_root {
                        return Err(format!("{i}: a second root element <{name}>"));
                    }
                    seen_root = true;
                }
                if !empty {
                    open.push(name);
                }
            }
            i += close + 1;
            continue;
        }
        if c == '&' {
            let end = rest.find(';').ok_or_else(|| format!("{i}: & without ;"))?;
            let name = &rest[1..end];
            let numeric = match name.strip_prefix("#x") {
                Some(hex) => Some(u32::from_str_radix(hex, 16)),
                None => name.strip_prefix('#').map(str::parse::<u32>),
            };
            let known = match numeric {
                Some(n) => n.ok().and_then(char::from_u32).is_some_and(is_char),
                None => matches!(name, "amp" | "lt" | "gt" | "quot" | "apos"),
            };
            if !known || open.is_empty() {
                return Err(format!("{i}: &{name}; is not a reference allowed here"));
            }
            i += end + 1;
            continue;
        }
        if !is_char(c) {
            return Err(format!("{i}: {c:?} is not an XML character"));
        }
        if open.is_empty() && !c.is_ascii_whitespace() {
            return Err(format!("{i}: text outside the root element"));
        }
        if rest.starts_with("]]>") {
            return Err(format!("{i}: ]]> in text"));
        }
        i += c.len_utf8();
    }
    match (seen_root, open.last()) {
        (false, _) => Err("no root element".into()),
        (true, Some(top)) => Err(format!("<{top}> is never closed")),
        (true, None) => Ok(()),
    }
}

#[test]
fn the_check_refuses_what_is_not_well_formed() {
    for good in [
        "<response><returncode>SUCCESS</returncode></response>",
        "<a><b/><![CDATA[x<&]]]]><![CDATA[>y]]>&lt;&#65;&#x1F600;\t\n</a>",
    ] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "text",
        "<a>",
        "<a></b>",
        "<a></a><b></b>",
        "<a>\u{0}</a>",
        "<a>\u{1b}</a>",
        "<a>\u{FFFE}</a>",
        "<a><![CDATA[\u{8}]]></a>",
        "<a><![CDATA[x</a>",
        "<a>x < y</a>",
        "<a>x & y</a>",
        "<a>&nbsp;</a>",
        "<a>&#0;</a>",
        "<a>]]></a>",
        "<a x=\"1\"></a>",
        "<?xml version=\"1.0\"?><a></a>",
        "<a><!-- c --></a>",
        "<1a></1a>",
    ] {
        assert!(check(bad).is_err(), "{bad:?} passed");
    }
}

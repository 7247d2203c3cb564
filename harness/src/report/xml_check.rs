//! A small XML well-formedness checker for tests of the hand-written documents (JUnit, SVG):
//! balanced and properly nested tags, quoted attributes, known entities only. Not a parser for
//! arbitrary XML; enough to catch the mistakes a string-building writer makes.

/// Panics with the position and the problem if `xml` is not well-formed.
#[cfg(test)]
pub fn assert_well_formed(xml: &str) {
    if let Err(problem) = check(xml) {
        panic!("not well-formed XML: {problem}\n{xml}");
    }
}

/// The names of the elements in `xml`, in document order (for "contains a <polyline>" checks).
pub fn element_names(xml: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    walk(xml, |name| names.push(name.to_owned()))?;
    Ok(names)
}

/// `Ok` when well-formed, else what is wrong and where.
pub fn check(xml: &str) -> Result<(), String> {
    walk(xml, |_| {})
}

fn walk(xml: &str, mut on_open: impl FnMut(&str)) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    let mut roots = 0;
    let at = |rest: &str| xml.len() - rest.len();
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt]).map_err(|e| format!("{e} at byte {}", at(rest)))?;
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").ok_or("unterminated <? ?>")?;
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated end tag")?;
            let name = after[..end].trim();
            match stack.pop() {
                Some(open) if open == name => {}
                open => {
                    return Err(format!("</{name}> at byte {} closes {open:?}", at(rest)));
                }
            }
            rest = &after[end + 1..];
        } else {
            let after = &rest[1..];
            let end =
                tag_end(after).ok_or_else(|| format!("unterminated tag at byte {}", at(rest)))?;
            let inner = &after[..end];
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name_len = inner
                .find(|c: char| c.is_whitespace())
                .unwrap_or(inner.len());
            let name = &inner[..name_len];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_:.".contains(c))
            {
                return Err(format!("bad element name {name:?} at byte {}", at(rest)));
            }
            check_attributes(&inner[name_len..]).map_err(|e| format!("<{name}>: {e}"))?;
            if stack.is_empty() {
                roots += 1;
            }
            on_open(name);
            if !self_closing {
                stack.push(name);
            }
            rest = &after[end + 1..];
        }
    }
    check_text(rest)?;
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> is never closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

/// Index of the `>` ending a tag, skipping quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

fn check_attributes(mut s: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(());
        }
        let eq = s
            .find('=')
            .ok_or_else(|| format!("attribute without value: {s:?}"))?;
        let name = s[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name {name:?}"));
        }
        if seen.contains(&name) {
            return Err(format!("duplicate attribute {name}"));
        }
        seen.push(name);
        let value = s[eq + 1..].trim_start();
        let quote = value
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("attribute {name} is not quoted"))?;
        let end = value[1..]
            .find(quote)
            .ok_or_else(|| format!("attribute {name} is not closed"))?;
        let text = &value[1..1 + end];
        if text.contains('<') {
            return Err(format!("attribute {name} contains '<'"));
        }
        check_text(text)?;
        s = &value[end + 2..];
    }
}

fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let end = after.find(';').ok_or("'&' without ';'")?;
        let entity = &after[..end];
        let known = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix("#x")
                .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
            || entity
                .strip_prefix('#')
                .is_some_and(|d| d.parse::<u32>().is_ok());
        if !known {
            return Err(format!("unknown entity &{entity};"));
        }
        rest = &after[end + 1..];
    }
    if text.contains('>') && text.contains("]]>") {
        return Err("']]>' in text".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("control character U+{:04X} in text", c as u32));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nested_documents_and_reports_element_names() {
        let xml = r#"<?xml version="1.0"?><svg a="1" b='x &amp; y'><g><path d="M0 0"/></g><!-- c --></svg>"#;
        assert_eq!(check(xml), Ok(()));
        assert_eq!(element_names(xml).unwrap(), vec!["svg", "g", "path"]);
    }

    #[test]
    fn rejects_the_mistakes_a_string_builder_makes() {
        for (xml, problem) in [
            ("<a><b></a>", "closes"),
            ("<a>", "never closed"),
            ("<a x=1/>", "not quoted"),
            ("<a>&nbsp;</a>", "unknown entity"),
            ("<a>a & b</a>", "without ';'"),
            ("<a/><b/>", "2 root elements"),
            ("<a x=\"1\" x=\"2\"/>", "duplicate"),
            ("<a>\u{1b}</a>", "control character"),
        ] {
            let err = check(xml).unwrap_err();
            assert!(err.contains(problem), "{xml}: {err}");
        }
    }
}

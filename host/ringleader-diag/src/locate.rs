//! Finding where a value is in a TOML or JSON file, by its path (`devices[3].timezone`),
//! so that problems found after parsing can still name a line and column.

use std::ops::Range;

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Formats a path as `devices[3].timezone`.
pub fn path_text(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Byte range of the value at `path` in TOML `text`; falls back to the nearest parent.
pub fn locate_toml(text: &str, path: &[Seg<'_>]) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut best = root.span();
    let mut table: &DeTable<'_> = root.get_ref();
    let mut current: Option<&toml::Spanned<DeValue<'_>>> = None;
    for seg in path {
        let next = match (seg, current.map(|c| c.get_ref())) {
            (Seg::Key(k), None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(t)) = current.map(|c| c.get_ref()) {
                    table = t;
                }
                table
                    .iter()
                    .find(|(key, _)| key.get_ref() == k)
                    .map(|(_, v)| v)
            }
            (Seg::Index(i), Some(DeValue::Array(items))) => items.get(*i),
            _ => None,
        };
        match next {
            Some(value) => {
                best = value.span();
                current = Some(value);
            }
            None => break,
        }
    }
    Some(best)
}

/// Byte range of the value at `path` in JSON `text`; falls back to the nearest parent.
pub fn locate_json(text: &str, path: &[Seg<'_>]) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    let mut best = pos..value_end(bytes, pos)?;
    for seg in path {
        let found = match (seg, bytes.get(pos)) {
            (Seg::Key(k), Some(b'{')) => find_member(bytes, pos, k),
            (Seg::Index(i), Some(b'[')) => find_element(bytes, pos, *i),
            _ => None,
        };
        match found {
            Some(start) => {
                pos = start;
                best = start..value_end(bytes, start)?;
            }
            None => break,
        }
    }
    Some(best)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// End (exclusive) of the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => {
            let mut j = i + 1;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
            None
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = value_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            Some(j)
        }
    }
}

fn find_member(b: &[u8], open: usize, key: &str) -> Option<usize> {
    let mut i = skip_ws(b, open + 1);
    while i < b.len() && b[i] == b'"' {
        let key_end = value_end(b, i)?;
        let name = std::str::from_utf8(&b[i + 1..key_end - 1]).ok()?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(b, colon + 1);
        if name == key {
            return Some(value);
        }
        i = skip_ws(b, value_end(b, value)?);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    None
}

fn find_element(b: &[u8], open: usize, index: usize) -> Option<usize> {
    let mut i = skip_ws(b, open + 1);
    let mut n = 0;
    while i < b.len() && b[i] != b']' {
        if n == index {
            return Some(i);
        }
        i = skip_ws(b, value_end(b, i)?);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        n += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"name = "x"

[[devices]]
id = "a"

[[devices]]
id = "b"
components = { bios = "2.1" }
"#;

    const JSON: &str = r#"{"name": "x", "devices": [
  {"id": "a"},
  {"id": "b", "components": {"bios": "2.1"}}
]}"#;

    fn at(text: &str, r: Option<Range<usize>>) -> &str {
        &text[r.unwrap()]
    }

    #[test]
    fn finds_values_in_toml() {
        let p = [
            Seg::Key("devices"),
            Seg::Index(1),
            Seg::Key("components"),
            Seg::Key("bios"),
        ];
        assert_eq!(at(TOML, locate_toml(TOML, &p)), "\"2.1\"");
        let p = [Seg::Key("devices"), Seg::Index(0), Seg::Key("id")];
        assert_eq!(at(TOML, locate_toml(TOML, &p)), "\"a\"");
        assert_eq!(path_text(&p), "devices[0].id");
    }

    #[test]
    fn finds_values_in_json() {
        let p = [
            Seg::Key("devices"),
            Seg::Index(1),
            Seg::Key("components"),
            Seg::Key("bios"),
        ];
        assert_eq!(at(JSON, locate_json(JSON, &p)), "\"2.1\"");
        let p = [Seg::Key("devices"), Seg::Index(0), Seg::Key("id")];
        assert_eq!(at(JSON, locate_json(JSON, &p)), "\"a\"");
        // A missing key falls back to its parent.
        let p = [Seg::Key("devices"), Seg::Index(0), Seg::Key("site")];
        assert_eq!(at(JSON, locate_json(JSON, &p)), "{\"id\": \"a\"}");
    }
}

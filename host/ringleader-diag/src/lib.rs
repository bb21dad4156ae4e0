//! Diagnostics for the files people write (plugin manifests, policies, inventories):
//! every problem names the file, the line and column, the key, what is wrong and how
//! to fix it, and a file gets all its problems reported at once, not only the first.

pub mod locate;

pub use locate::{Seg, locate_json, locate_toml, path_text};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file people write (manifest, policy, inventory) that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("failed to read {what} {}: {error}", path.display())]
    Read {
        /// What the file is, e.g. `policy`.
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// Every problem found, each with file, line, column, key and hint.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads the `what` file at `path` as text. A file that is not UTF-8 is
/// [`FileError::Invalid`], located at its first bad byte.
pub fn read_file(what: &'static str, path: &Path) -> Result<String, FileError> {
    let bytes = std::fs::read(path).map_err(|error| FileError::Read {
        what,
        path: path.to_owned(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|e| FileError::Invalid(not_utf8(what, path, e.as_bytes())))
}

/// The problem of `bytes`, read from `path`, not being UTF-8: where its first bad
/// byte is (line and column counted as for every other problem) and which it is.
pub fn not_utf8(what: &str, path: &Path, bytes: &[u8]) -> Diagnostics {
    let (valid, len) = match std::str::from_utf8(bytes) {
        Ok(_) => (bytes.len(), None),
        Err(e) => (e.valid_up_to(), e.error_len()),
    };
    let text = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
    let mut d = Diagnostics::new(path, text);
    let shown = |b: &[u8]| {
        b.iter()
            .map(|b| format!("0x{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let message = match len {
        Some(n) => format!(
            "the {what} is not valid UTF-8: byte {} is not part of a character",
            shown(&bytes[valid..valid + n])
        ),
        None => format!(
            "the {what} is not valid UTF-8: it ends inside a character ({})",
            shown(&bytes[valid..])
        ),
    };
    d.error(
        valid..valid,
        "",
        message,
        "re-save the file as UTF-8 (in most editors: \"Save with encoding\", UTF-8)",
    );
    d
}

/// `text` with control and invisible characters escaped (`\r`, `\u{202e}`), for
/// quoting input in a diagnostic: C0 and C1 controls, DEL, bidirectional overrides
/// and isolates, zero-width characters, line and paragraph separators, the BOM. A
/// terminal then shows what the file holds instead of acting on it.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether [`escape`] escapes `c`.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is still usable, but probably not as meant.
    Warning,
    /// The file cannot be used.
    Error,
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// 1-based line and column.
    pub line: usize,
    pub column: usize,
    /// The key concerned, e.g. `rings[2].soak`; empty when none applies.
    pub key: String,
    pub message: String,
    /// How to fix it; empty when there is nothing useful to say.
    pub hint: String,
}

/// The syntax of a file, for finding values in it by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

/// The problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub path: PathBuf,
    text: String,
    format: Format,
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Starts collecting problems of `path`, whose content is `text` (used to turn byte
    /// offsets into lines and columns).
    pub fn new(path: &Path, text: &str) -> Diagnostics {
        Diagnostics::with_format(path, text, Format::Toml)
    }

    /// Like [`Diagnostics::new`], for a file in `format`.
    pub fn with_format(path: &Path, text: &str, format: Format) -> Diagnostics {
        Diagnostics {
            path: path.to_owned(),
            text: text.to_owned(),
            format,
            list: Vec::new(),
        }
    }

    /// Byte range of the value at `path` in the file (or of its nearest parent).
    pub fn span_of(&self, path: &[Seg<'_>]) -> Range<usize> {
        match self.format {
            Format::Toml => locate_toml(&self.text, path),
            Format::Json => locate_json(&self.text, path),
        }
        .unwrap_or(0..0)
    }

    /// Records an error about the value at `path`, naming the path as the key.
    pub fn error_at(&mut self, path: &[Seg<'_>], message: impl Into<String>, hint: &str) {
        let span = self.span_of(path);
        self.error(span, &path_text(path), message, hint);
    }

    /// Records a warning about the value at `path`, naming the path as the key.
    pub fn warning_at(&mut self, path: &[Seg<'_>], message: impl Into<String>, hint: &str) {
        let span = self.span_of(path);
        self.warning(span, &path_text(path), message, hint);
    }

    /// Records a JSON parse or type error.
    pub fn json_error(&mut self, error: &serde_json::Error, hint: &str) {
        let message = error.to_string();
        // serde_json appends " at line L column C"; we print our own location.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_string();
        let key = field_in_message(&message).unwrap_or_default();
        // serde_json counts columns in bytes, and says column 0 at the start of a line
        // (or of an empty file): count characters from 1, as every other problem does.
        let line_start = self
            .text
            .split_inclusive('\n')
            .take(error.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>();
        let offset = line_start + error.column().saturating_sub(1);
        let (line, column) = self.locate(offset);
        self.list.push(Diagnostic {
            severity: Severity::Error,
            line,
            column,
            key,
            message,
            hint: hint.to_owned(),
        });
    }

    /// 1-based line and column of byte `offset`.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        key: &str,
        message: String,
        hint: &str,
    ) {
        let (line, column) = self.locate(span.start);
        self.list.push(Diagnostic {
            severity,
            line,
            column,
            key: key.to_owned(),
            message,
            hint: hint.to_owned(),
        });
    }

    /// Records an error at byte range `span`.
    pub fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>, hint: &str) {
        self.push(Severity::Error, span, key, message.into(), hint);
    }

    /// Records a warning at byte range `span`.
    pub fn warning(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: &str,
    ) {
        self.push(Severity::Warning, span, key, message.into(), hint);
    }

    /// Records a TOML parse or type error (syntax, unknown key, missing key, wrong type).
    pub fn toml_error(&mut self, error: &toml::de::Error, hint: &str) {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_string();
        let key = field_in_message(&message)
            .or_else(|| self.key_before(span.start))
            .unwrap_or_default();
        let hint = if message.starts_with("unknown field") {
            "remove the key or fix its spelling"
        } else {
            hint
        };
        self.error(span, &key, message, hint);
    }

    /// Reads TOML `text` into `T`, recording every unknown key and every value of the
    /// wrong type (each located), not only the first serde stops at: each one is
    /// recorded, taken out of the document, and the rest is read again (a table left
    /// without a key that was taken out is taken out too, and its missing key not
    /// reported). Returns what the rest holds, so that the caller can validate its values
    /// too (the errors are recorded all the same). `None` when the text is not TOML, a
    /// problem cannot be taken out (a missing key), or an array element was (the places
    /// of the elements after it would no longer be theirs).
    pub fn toml_from_str<T: serde::de::DeserializeOwned>(
        &mut self,
        text: &str,
        hint: &str,
    ) -> Option<T> {
        use toml::de::{DeTable, Deserializer};
        let mut root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                self.toml_error(&e, hint);
                return None;
            }
        };
        let mut taken_out: Vec<String> = Vec::new();
        let mut shifted = false;
        for _ in 0..=MAX_TOML_PROBLEMS {
            let e = match T::deserialize(Deserializer::from(root.clone())) {
                Ok(value) => return (!shifted).then_some(value),
                Err(e) => e,
            };
            let missing = e
                .message()
                .strip_prefix("missing field")
                .and_then(|_| field_in_message(e.message()));
            let consequence = missing.as_ref().is_some_and(|key| taken_out.contains(key));
            if !consequence {
                self.toml_error(&e, hint);
            }
            match e.span().and_then(|span| take_out(root.get_mut(), &span)) {
                Some(taken) if consequence || missing.is_none() => {
                    shifted |= taken.element;
                    taken_out.push(taken.key);
                }
                _ => return None,
            }
        }
        None
    }

    /// The key of a `key = value` whose value starts at `offset`, if the line shows one.
    fn key_before(&self, offset: usize) -> Option<String> {
        let before = self.text.get(..offset)?;
        let line = before.rsplit('\n').next()?;
        let (key_part, value_part) = line.rsplit_once('=')?;
        if !value_part.trim().is_empty() {
            return None;
        }
        let key = key_part.rsplit(['{', ',']).next()?.trim();
        (!key.is_empty() && !key.contains(' ')).then(|| key.to_string())
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter().filter(|d| d.severity == Severity::Warning)
    }

    /// Sorts problems by place in the file, keeping the order of those at one place.
    pub fn sort(&mut self) {
        self.list.sort_by_key(|d| (d.line, d.column));
    }

    /// Formats one diagnostic as `file:line:col: [warning: ]`key`: message (hint: ...)`.
    ///
    /// Control and invisible characters of the input quoted in it are escaped
    /// ([`escape`]); the column counts the file's characters, escaped or not.
    pub fn format(&self, d: &Diagnostic) -> String {
        let out = self.format_raw(d);
        escape(&out).into_owned()
    }

    fn format_raw(&self, d: &Diagnostic) -> String {
        let mut out = format!("{}:{}:{}: ", self.path.display(), d.line, d.column);
        if d.severity == Severity::Warning {
            out.push_str("warning: ");
        }
        if !d.key.is_empty() {
            out.push_str(&format!("`{}`: ", d.key));
        }
        out.push_str(&d.message);
        if !d.hint.is_empty() {
            out.push_str(&format!(" (hint: {})", d.hint));
        }
        out
    }
}

/// Every error, one per line (warnings are left to the caller).
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors().map(|d| self.format(d)).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Diagnostics {}

/// The most unknown keys and wrongly typed values [`Diagnostics::toml_from_str`] reports
/// in one file: each costs reading the document again, and a file with more is better
/// fixed a screenful at a time than read quadratically.
const MAX_TOML_PROBLEMS: usize = 100;

/// What [`take_out`] took out of a document.
struct Taken {
    /// Its key (for an array element, the array's).
    key: String,
    /// It was an array element.
    element: bool,
}

/// Takes the entry at `span` (its key's or its value's) out of `table`, the deepest
/// first: an array's first `[[table]]` and the array itself span the same header.
fn take_out(table: &mut toml::de::DeTable<'_>, span: &Range<usize>) -> Option<Taken> {
    use toml::de::DeValue;
    // Searched whole: a table under a `[header]` spans only its header.
    for (key, value) in table.iter_mut() {
        let found = match value.get_mut() {
            DeValue::Table(inner) => take_out(inner, span),
            DeValue::Array(items) => take_out_of_array(items, span, key.get_ref()),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    let key = table
        .iter()
        .find(|(k, v)| k.span() == *span || v.span() == *span)
        .map(|(k, _)| k.get_ref().to_string())?;
    table.remove(key.as_str());
    Some(Taken {
        key,
        element: false,
    })
}

fn take_out_of_array(
    items: &mut toml::de::DeArray<'_>,
    span: &Range<usize>,
    key: &str,
) -> Option<Taken> {
    use toml::de::DeValue;
    let deeper = items.iter_mut().find_map(|item| match item.get_mut() {
        DeValue::Table(inner) => take_out(inner, span),
        DeValue::Array(inner) => take_out_of_array(inner, span, key),
        _ => None,
    });
    if deeper.is_some() {
        return deeper;
    }
    let i = items.iter().position(|item| item.span() == *span)?;
    let all = std::mem::replace(items, toml::de::DeArray::new());
    *items = all
        .into_iter()
        .enumerate()
        .filter_map(|(j, item)| (j != i).then_some(item))
        .collect();
    Some(Taken {
        key: key.to_string(),
        element: true,
    })
}

/// `unknown field `foo`, expected ...` -> `foo`; `missing field `name`` -> `name`.
fn field_in_message(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("missing field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_lines_and_columns() {
        let d = Diagnostics::new(Path::new("f.toml"), "a = 1\nbé = 2\n");
        assert_eq!(d.locate(0), (1, 1));
        assert_eq!(d.locate(6), (2, 1));
        assert_eq!(d.locate(10), (2, 4), "columns count characters, not bytes");
        assert_eq!(d.locate(999), (3, 1));
    }

    #[test]
    fn formats_errors_and_warnings() {
        let mut d = Diagnostics::new(Path::new("p.toml"), "x = 1\n");
        d.error(0..1, "x", "is wrong", "fix it");
        d.warning(4..5, "", "looks odd", "");
        assert_eq!(
            d.format(&d.list[0]),
            "p.toml:1:1: `x`: is wrong (hint: fix it)"
        );
        assert_eq!(d.format(&d.list[1]), "p.toml:1:5: warning: looks odd");
        assert_eq!(d.to_string(), "p.toml:1:1: `x`: is wrong (hint: fix it)");
        assert!(d.has_errors());
    }

    #[test]
    fn invalid_utf8_is_located_at_its_first_bad_byte() {
        let bytes = b"name = \"x\"\nreason = \"caf\xc3\xa9 \xff\"\n";
        let d = not_utf8("policy", Path::new("p.toml"), bytes);
        assert_eq!(
            d.to_string(),
            "p.toml:2:16: the policy is not valid UTF-8: byte 0xff is not part of a character (hint: re-save the file as UTF-8 (in most editors: \"Save with encoding\", UTF-8))"
        );
        let d = not_utf8("inventory", Path::new("i.toml"), b"a = 1\nb = \"\xe2\x82");
        assert_eq!((d.list[0].line, d.list[0].column), (2, 6));
        assert!(
            d.list[0]
                .message
                .contains("ends inside a character (0xe2 0x82)")
        );
        let dir = std::env::temp_dir().join(format!("diag-utf8-{}", std::process::id()));
        std::fs::write(&dir, bytes).unwrap();
        let e = read_file("policy", &dir).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(e, FileError::Invalid(d) if d.list[0].line == 2));
    }

    #[test]
    fn quoted_control_and_invisible_characters_are_escaped() {
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(
            escape("\rAsia/Singapore\u{1b}[2J\u{7f}\u{85}\u{202e}x\u{200b}\u{feff}\u{2066}\t"),
            "\\rAsia/Singapore\\u{1b}[2J\\u{7f}\\u{85}\\u{202e}x\\u{200b}\\u{feff}\\u{2066}\\t"
        );
        let mut d = Diagnostics::new(Path::new("i.toml"), "tz = \"\rX\"\n");
        d.error(5..9, "tz", "`\rX` is not a time zone", "");
        assert_eq!(d.to_string(), "i.toml:1:6: `tz`: `\\rX` is not a time zone");
    }

    #[test]
    fn json_errors_count_columns_in_characters_from_one() {
        for (text, expected) in [("", (1, 1)), ("{\"é\": x}", (1, 7)), ("[\n", (2, 1))] {
            let e = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            let mut d = Diagnostics::with_format(Path::new("f.json"), text, Format::Json);
            d.json_error(&e, "");
            assert_eq!(
                (d.list[0].line, d.list[0].column),
                expected,
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn toml_from_str_reports_every_unknown_key_and_wrong_type_and_reads_the_rest() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ring {
            name: String,
            days: Vec<String>,
            soak: Option<String>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            rings: Vec<Ring>,
        }
        let text = "[[rings]]\nname = 5\ndays = [\"mon\", 3]\ncolour = 1\n\n[[rings]]\nname = \"b\"\ndays = []\nsoak = 2\nsoak_time = \"1h\"\n";
        let mut d = Diagnostics::new(Path::new("d.toml"), text);
        let doc: Option<Doc> = d.toml_from_str(text, "");
        d.sort();
        let found: Vec<(usize, &str)> = d.list.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, "name"),
                (3, ""),
                (4, "colour"),
                (9, "soak"),
                (10, "soak_time")
            ],
            "{:#?}",
            d.list
        );
        assert!(d.list.iter().all(|p| !p.message.starts_with("missing")));
        assert!(doc.is_none(), "ring 0 has no name left: not readable");

        let text = "[[rings]]\nname = \"a\"\ndays = [\"mon\"]\nsoak = 3\ncolour = 1\n";
        let mut d = Diagnostics::new(Path::new("d.toml"), text);
        let doc: Doc = d.toml_from_str(text, "").expect("the rest is readable");
        assert_eq!(d.list.len(), 2, "{:#?}", d.list);
        assert_eq!(doc.rings[0].days, ["mon"]);
        assert_eq!(
            (doc.rings[0].name.as_str(), doc.rings[0].soak.as_deref()),
            ("a", None)
        );

        let text = "[[rings]]\nname = \"a\"\ndays = [3, \"mon\"]\n";
        let mut d = Diagnostics::new(Path::new("d.toml"), text);
        let doc: Option<Doc> = d.toml_from_str(text, "");
        assert!(doc.is_none(), "`mon` is no longer at days[1]");
        assert_eq!(d.list.len(), 1, "{:#?}", d.list);

        let mut d = Diagnostics::new(Path::new("d.toml"), "rings = [");
        assert!(d.toml_from_str::<Doc>("rings = [", "").is_none());
        assert_eq!(d.list.len(), 1, "a syntax error is one problem");
    }

    #[test]
    fn toml_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only the error matters")]
        struct S {
            a: u32,
        }
        let text = "a = 1\nb = 2\n";
        let e = toml::from_str::<S>(text).unwrap_err();
        let mut d = Diagnostics::new(Path::new("s.toml"), text);
        d.toml_error(&e, "see the docs");
        let first = &d.list[0];
        assert_eq!((first.line, first.key.as_str()), (2, "b"));
        assert_eq!(first.hint, "remove the key or fix its spelling");
    }
}

//! The header line: delimiter detection, column-name normalisation and the column layout.

use std::sync::Arc;

use crate::model::NameInterner;

use super::error::FileError;

/// Delimiters dsync detects, in the order that wins a tie.
pub(crate) const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Picks the delimiter that occurs most often outside quotes in the header
/// line. A header with none of them (a single column) is comma-separated.
pub(crate) fn detect_delimiter(header_line: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut in_quotes = false;

    for &byte in header_line {
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            if let Some(index) = DELIMITERS.iter().position(|&delimiter| delimiter == byte) {
                counts[index] += 1;
            }
        }
    }

    let mut best = 0;
    for index in 1..DELIMITERS.len() {
        if counts[index] > counts[best] {
            best = index;
        }
    }
    DELIMITERS[best]
}

/// Shows a delimiter as reports print it: `,` `;` `\t` or `|`.
pub(crate) fn delimiter_label(delimiter: u8) -> &'static str {
    match delimiter {
        b';' => ";",
        b'\t' => "\\t",
        b'|' => "|",
        _ => ",",
    }
}

/// Whitespace for trimming: Unicode white space (which includes the
/// non-breaking space U+00A0) plus the zero-width space and a stray byte
/// order mark, which spreadsheets leave around values and are invisible.
fn is_trimmable(character: char) -> bool {
    character.is_whitespace() || character == '\u{200B}' || character == '\u{FEFF}'
}

/// Trims a value as dsync stores it.
pub(crate) fn trim_value(value: &str) -> &str {
    // ASCII fast path: most values have no surrounding space at all.
    let bytes = value.as_bytes();
    if bytes
        .first()
        .is_some_and(|byte| byte.is_ascii_alphanumeric())
        && bytes
            .last()
            .is_some_and(|byte| byte.is_ascii_alphanumeric())
    {
        return value;
    }
    value.trim_matches(is_trimmable)
}

/// Normalises a header name: trimmed, lowercased, and every run of spaces,
/// hyphens and underscores turned into one underscore, so `First Name`,
/// `first-name` and `FIRST_NAME` are all `first_name`.
pub(crate) fn normalise_column_name(name: &str) -> String {
    let mut normalised = String::with_capacity(name.len());
    let mut pending_separator = false;

    for character in trim_value(name).chars() {
        if is_trimmable(character) || character == '-' || character == '_' {
            pending_separator = true;
            continue;
        }
        if pending_separator && !normalised.is_empty() {
            normalised.push('_');
        }
        pending_separator = false;
        normalised.extend(character.to_lowercase());
    }
    normalised
}

/// The columns of one file after normalisation.
#[derive(Debug)]
pub(crate) struct Columns {
    /// Normalised names by position; `None` for an empty name, whose values are ignored.
    names: Vec<Option<Arc<str>>>,
    /// Positions of the named columns, sorted by name, so attribute lists are
    /// built already in order.
    sorted: Vec<usize>,
}

impl Columns {
    /// Builds the layout from the header record. Empty trailing names, from a
    /// trailing delimiter, are dropped. An empty name in the middle is kept as
    /// an ignored column, and the returned list has its 1-based position.
    pub(crate) fn from_header<'a>(
        header: impl Iterator<Item = &'a str>,
        interner: &mut NameInterner,
    ) -> Result<(Self, Vec<usize>), FileError> {
        let mut names: Vec<Option<Arc<str>>> = header
            .map(|raw| {
                let name = normalise_column_name(raw);
                (!name.is_empty()).then(|| interner.intern(&name))
            })
            .collect();
        while names.last().is_some_and(Option::is_none) {
            names.pop();
        }
        if names.is_empty() {
            return Err(FileError::NoHeader);
        }

        for (second, name) in names.iter().enumerate() {
            let Some(name) = name else { continue };
            if let Some(first) = names[..second]
                .iter()
                .position(|earlier| earlier.as_ref() == Some(name))
            {
                return Err(FileError::DuplicateColumn {
                    column: name.to_string(),
                    first: first + 1,
                    second: second + 1,
                });
            }
        }

        let empty_names = names
            .iter()
            .enumerate()
            .filter(|(_, name)| name.is_none())
            .map(|(index, _)| index + 1)
            .collect();

        let mut sorted: Vec<usize> = (0..names.len())
            .filter(|&index| names[index].is_some())
            .collect();
        sorted.sort_by(|&a, &b| names[a].cmp(&names[b]));

        Ok((Self { names, sorted }, empty_names))
    }

    /// Number of columns the header defines, trailing empty names excluded.
    pub(crate) fn width(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|candidate| candidate.as_deref() == Some(name))
    }

    pub(crate) fn name(&self, index: usize) -> Option<&Arc<str>> {
        self.names.get(index).and_then(Option::as_ref)
    }

    /// Named column positions in name order.
    pub(crate) fn sorted_positions(&self) -> &[usize] {
        &self.sorted
    }

    /// Names of the required columns that the header lacks.
    pub(crate) fn missing(&self, required: &[&'static str]) -> Vec<&'static str> {
        required
            .iter()
            .copied()
            .filter(|name| self.index_of(name).is_none())
            .collect()
    }

    /// Returns the normalised names, for error messages.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names
            .iter()
            .flatten()
            .map(|name| name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_comma() {
        assert_eq!(detect_delimiter(b"user_id,first_name,email\n"), b',');
    }

    #[test]
    fn delimiter_semicolon_beats_comma_in_quotes() {
        assert_eq!(detect_delimiter(b"\"last, first\";email;id\n"), b';');
    }

    #[test]
    fn delimiter_tab_and_pipe() {
        assert_eq!(detect_delimiter(b"a\tb\tc\n"), b'\t');
        assert_eq!(detect_delimiter(b"a|b|c\n"), b'|');
    }

    #[test]
    fn delimiter_single_column_is_comma() {
        assert_eq!(detect_delimiter(b"group_name\n"), b',');
    }

    #[test]
    fn normalise_spaces_case_hyphens() {
        assert_eq!(normalise_column_name("First Name"), "first_name");
        assert_eq!(normalise_column_name("LAST_NAME"), "last_name");
        assert_eq!(normalise_column_name("user-id"), "user_id");
        assert_eq!(normalise_column_name("  User   ID "), "user_id");
    }

    #[test]
    fn normalise_non_breaking_space() {
        assert_eq!(normalise_column_name("\u{A0}Email\u{A0}"), "email");
        assert_eq!(normalise_column_name("Job\u{A0}Title"), "job_title");
        assert_eq!(normalise_column_name("\u{FEFF}user_id"), "user_id");
    }

    #[test]
    fn trim_value_unicode_space() {
        assert_eq!(trim_value("\u{A0} ana@example.com \t"), "ana@example.com");
        assert_eq!(trim_value("plain"), "plain");
        assert_eq!(trim_value("   "), "");
    }

    #[test]
    fn columns_drop_trailing_empty_names() {
        let mut interner = NameInterner::default();
        let (columns, empty) =
            Columns::from_header(["a", "b", "", " "].into_iter(), &mut interner).unwrap();
        assert_eq!(columns.width(), 2);
        assert!(empty.is_empty());
    }

    #[test]
    fn columns_report_empty_name_in_middle() {
        let mut interner = NameInterner::default();
        let (columns, empty) =
            Columns::from_header(["a", "", "b"].into_iter(), &mut interner).unwrap();
        assert_eq!(columns.width(), 3);
        assert_eq!(empty, vec![2]);
    }

    #[test]
    fn columns_reject_duplicate_after_normalising() {
        let mut interner = NameInterner::default();
        let error = Columns::from_header(
            ["Email", "user_id", "E-mail", "email "].into_iter(),
            &mut interner,
        )
        .unwrap_err();
        assert_eq!(
            error,
            FileError::DuplicateColumn {
                column: "email".to_owned(),
                first: 1,
                second: 4
            }
        );
    }

    #[test]
    fn columns_sorted_positions() {
        let mut interner = NameInterner::default();
        let (columns, _) =
            Columns::from_header(["user_id", "email", "b"].into_iter(), &mut interner).unwrap();
        assert_eq!(columns.sorted_positions(), &[2, 1, 0]);
    }
}

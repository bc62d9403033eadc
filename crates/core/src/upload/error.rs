//! File-level problems: each one rejects the whole file.

use std::fmt;
use std::io;

/// A problem that makes a whole upload unusable. The kind it belongs to
/// keeps its stored state.
///
/// The readers below the CSV parser report these as the payload of an
/// `io::Error`, so they pass through `csv::Reader` unchanged; see [`FileError::from_io`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileError {
    TooLarge {
        max_file_bytes: u64,
    },
    TooManyRows {
        max_rows: u64,
    },
    /// Content that is not text: a NUL byte, or a known binary signature.
    Binary {
        hint: &'static str,
    },
    /// Valid multi-byte UTF-8 followed later by bytes that are not UTF-8.
    MixedEncoding {
        byte_offset: u64,
    },
    InvalidUtf16 {
        byte_offset: u64,
    },
    /// A quoted field that is never closed before the end of the file.
    UnclosedQuote {
        /// The data row, or `None` when the quote opens in the header.
        row: Option<u64>,
        /// The line where the open quoted value starts.
        line: u64,
        /// The column whose value opened the quote.
        column: Option<String>,
    },
    /// Most data rows have another field count than the header: the rows
    /// and the header use different delimiters.
    WrongDelimiter {
        unidentified: u64,
        rows: u64,
        columns: usize,
        delimiter: &'static str,
    },
    /// A record that spans lines and has the wrong number of fields, or
    /// spans more lines or bytes than any real value does.
    RunawayQuote {
        row: u64,
        line: u64,
        lines: u64,
    },
    MissingColumns {
        missing: Vec<&'static str>,
        found: Vec<String>,
    },
    DuplicateColumn {
        column: String,
        first: usize,
        second: usize,
    },
    NoHeader,
}

impl FileError {
    /// Extracts a file-level problem carried inside an I/O error.
    pub(crate) fn from_io(error: &io::Error) -> Option<&FileError> {
        error.get_ref()?.downcast_ref::<FileError>()
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Returns the 1-based data row and physical line where the problem starts, when known.
    pub(crate) fn position(&self) -> (Option<u64>, Option<u64>) {
        match self {
            FileError::UnclosedQuote { row, line, .. } => (*row, Some(*line)),
            FileError::RunawayQuote { row, line, .. } => (Some(*row), Some(*line)),
            _ => (None, None),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::TooLarge { max_file_bytes } => write!(
                f,
                "the file is larger than the limit of {max_file_bytes} bytes, so it was not read; \
                 remove unused columns or ask the dsync operator to raise the limit"
            ),
            FileError::TooManyRows { max_rows } => write!(
                f,
                "the file has more than {max_rows} data rows, the limit for one upload, so it was not read; \
                 ask the dsync operator to raise the limit"
            ),
            FileError::Binary { hint } => write!(f, "the file is not CSV text ({hint}); export the data as CSV and upload that"),
            FileError::MixedEncoding { byte_offset } => write!(
                f,
                "the file mixes encodings: it starts as UTF-8 but byte {byte_offset} is not valid UTF-8; \
                 export the whole file again as CSV UTF-8"
            ),
            FileError::InvalidUtf16 { byte_offset } => write!(
                f,
                "the file starts with a UTF-16 byte order mark but byte {byte_offset} is not valid UTF-16; \
                 export the file again as CSV UTF-8 or Unicode text"
            ),
            FileError::UnclosedQuote { line, .. } => write!(
                f,
                "a quoted value that starts on line {line} is never closed, so the rest of the file would be read \
                 as one value; add the missing closing quote (\") or remove the stray opening quote"
            ),
            FileError::WrongDelimiter { unidentified, rows, columns, delimiter } => write!(
                f,
                "{unidentified} of the {rows} data rows do not have the header's {columns} fields when split at \
                 \"{delimiter}\" (the header's delimiter), so the rows probably use another delimiter; export the \
                 file again with one delimiter for the header and every row"
            ),
            FileError::RunawayQuote { row, line, lines } => write!(
                f,
                "row {row} starts on line {line} and runs over {lines} lines inside quotes, which looks like an \
                 unbalanced quote swallowing other rows; add the missing closing quote (\") or remove the stray quote"
            ),
            FileError::MissingColumns { missing, found } => write!(
                f,
                "required column {} missing (header has: {}); add {} to the header line",
                missing.join(", "),
                if found.is_empty() { "no columns".to_owned() } else { found.join(", ") },
                if missing.len() == 1 { "it" } else { "them" }
            ),
            FileError::DuplicateColumn { column, first, second } => write!(
                f,
                "column {column} appears twice in the header (columns {first} and {second}) after normalising case, \
                 spaces and hyphens; rename or remove one of them"
            ),
            FileError::NoHeader => f.write_str("the file has no header line; the first line must name the columns"),
        }
    }
}

impl std::error::Error for FileError {}

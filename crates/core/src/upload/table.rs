//! Reading one upload as a table: decode, detect the delimiter, parse records,
//! number rows and lines, and hand each data row to the reader of its kind.

use std::io::{self, Read};

use csv::StringRecord;

use crate::model::NameInterner;
use crate::report::Diagnostic;

use super::columns::{delimiter_label, detect_delimiter, trim_value, Columns};
use super::decode::{Encoding, TextReader, END_MARKER};
use super::error::FileError;
use super::source::SourceReader;
use super::ReadLimits;

/// Buffer of the CSV parser, in bytes.
const PARSER_BUFFER_BYTES: usize = 64 * 1024;

/// A record running over more lines than this is an unbalanced quote, not a
/// real value: the longest real multi-line values (postal addresses, notes)
/// have a handful of lines.
const MAX_RECORD_LINES: u64 = 100;

/// A record larger than this is an unbalanced quote, not a real row.
const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Maximum row errors listed per file. The rest are counted in one closing
/// diagnostic, so a file with a million bad rows still gives a readable report.
const MAX_ROW_ERRORS_PER_FILE: usize = 1000;

/// Interval between progress reports, in data rows.
const PROGRESS_EVERY_ROWS: u64 = 64 * 1024;

/// The validation of one kind of file, fed one row at a time.
pub(crate) trait RowSink {
    /// Columns the header must have, normalised.
    fn required_columns(&self) -> &'static [&'static str];

    /// Receives the header once, before any row.
    fn begin(&mut self, columns: &Columns, report: &mut FileReport);

    /// Validates and keeps one data row. Returns false when the row was
    /// skipped because of a row error (which the sink has reported).
    fn row(&mut self, row: &Row<'_>, report: &mut FileReport) -> bool;

    /// Counts a row whose field count differs from the header's. Its values
    /// are in the wrong columns, so it names no record reliably.
    fn unidentified_row(&mut self) {}

    /// Receives the end of the file, for checks that need every row.
    fn end(&mut self, _report: &mut FileReport) {}

    /// Returns the maximum number of data rows for this kind of file.
    fn max_rows(&self, limits: &ReadLimits) -> u64 {
        limits.max_rows
    }
}

/// One data row as the sinks see it.
pub(crate) struct Row<'a> {
    /// 1-based data row number; blank lines and the header are not counted.
    pub number: u64,
    /// 1-based physical line where the row starts.
    pub line: u64,
    record: &'a StringRecord,
    columns: &'a Columns,
    /// Number of fields after dropping empty trailing ones.
    used_fields: usize,
}

impl Row<'_> {
    /// Returns the trimmed value of a column. Rows reach the sinks only
    /// when their field count matches the header's, so every column is there.
    pub fn value(&self, index: usize) -> &str {
        self.record.get(index).map(trim_value).unwrap_or("")
    }

    /// Returns the error message when the row's field count differs from the
    /// header's, not counting empty fields after the last column. Such a row
    /// has its values in the wrong columns, so even its user_id is unreliable.
    fn wrong_field_count(&self) -> Option<String> {
        let width = self.columns.width();
        let fields = if self.used_fields > width {
            self.used_fields
        } else {
            self.record.len()
        };
        (self.used_fields > width || self.record.len() < width).then(|| {
            format!(
                "row has {fields} fields but the header has {width}; check the delimiter and quoting of this row \
                 (a value containing the delimiter must be in double quotes)"
            )
        })
    }
}

/// Diagnostics of one file, capped at `MAX_ROW_ERRORS_PER_FILE` row errors.
pub(crate) struct FileReport {
    pub file: String,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    row_errors: u64,
    skipped_rows: u64,
}

impl FileReport {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            errors: Vec::new(),
            warnings: Vec::new(),
            row_errors: 0,
            skipped_rows: 0,
        }
    }

    /// Records a row-level error.
    pub(crate) fn row_error(&mut self, row: &Row<'_>, column: Option<&str>, message: String) {
        self.row_errors += 1;
        if self.errors.len() < MAX_ROW_ERRORS_PER_FILE {
            self.errors
                .push(self.at(Some(row.number), Some(row.line), column, message));
        }
    }

    /// Records a row-level error about an earlier row that was kept until now
    /// (the first copy of a duplicate), which makes it a skipped row too.
    pub(crate) fn earlier_row_error(
        &mut self,
        number: u64,
        line: u64,
        column: Option<&str>,
        message: String,
    ) {
        self.row_errors += 1;
        self.skipped_rows += 1;
        if self.errors.len() < MAX_ROW_ERRORS_PER_FILE {
            self.errors
                .push(self.at(Some(number), Some(line), column, message));
        }
    }

    pub(crate) fn file_warning(&mut self, message: String) {
        let warning = self.at(None, None, None, message);
        self.warnings.push(warning);
    }

    fn at(
        &self,
        row: Option<u64>,
        line: Option<u64>,
        column: Option<&str>,
        message: String,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            row,
            line,
            column: column.map(str::to_owned),
            message,
        }
    }

    /// Puts row errors in row order (repeats are found at the end of the
    /// file) and adds a closing note when row errors were dropped.
    fn close(&mut self) {
        self.errors.sort_by_key(|error| error.row);
        let dropped = self.row_errors.saturating_sub(self.errors.len() as u64);
        if dropped > 0 {
            let note = self.at(
                None,
                None,
                None,
                format!("{dropped} more row errors are not listed; fix the rows above and upload again to see them"),
            );
            self.errors.push(note);
        }
    }

    /// Rows skipped because of row errors.
    pub(crate) fn skipped_rows(&self) -> u64 {
        self.skipped_rows
    }

    /// Replaces every diagnostic so far with the one file-level error.
    pub(crate) fn reject(&mut self, error: &FileError) {
        let (row, line) = error.position();
        let column = match error {
            FileError::DuplicateColumn { column, .. } => Some(column.as_str()),
            FileError::UnclosedQuote { column, .. } => column.as_deref(),
            _ => None,
        };
        let diagnostic = self.at(row, line, column, error.to_string());
        self.errors = vec![diagnostic];
        self.row_errors = 0;
        self.skipped_rows = 0;
    }
}

/// The outcome of reading one file.
pub(crate) struct TableSummary {
    pub encoding: Encoding,
    /// `None` when the file was rejected before its header was read.
    pub delimiter: Option<u8>,
    pub rows: u64,
    pub size_bytes: u64,
    /// Empty when the file was over the size limit and not read to its end.
    pub sha256: String,
    /// The file-level error that rejected the file.
    pub rejected: Option<FileError>,
}

impl TableSummary {
    pub(crate) fn delimiter_label(&self) -> String {
        self.delimiter.map(delimiter_label).unwrap_or("").to_owned()
    }
}

/// Per-file parsing state that outlives a file-level error.
struct Progress {
    delimiter: Option<u8>,
    rows: u64,
    /// Data rows whose field count differs from the header's.
    unidentified: u64,
}

/// Reads one upload through `sink`. File-level problems come back in
/// [`TableSummary::rejected`]; the error is for a source that failed to read.
pub(crate) fn read_table(
    reader: Box<dyn Read + Send + '_>,
    limits: &ReadLimits,
    sink: &mut dyn RowSink,
    report: &mut FileReport,
    interner: &mut NameInterner,
    on_progress: &mut dyn FnMut(u64, u64),
) -> io::Result<TableSummary> {
    let mut text = TextReader::new(SourceReader::new(reader, limits.max_file_bytes));
    let mut progress = Progress {
        delimiter: None,
        rows: 0,
        unidentified: 0,
    };

    let outcome = parse(
        &mut text,
        limits,
        sink,
        report,
        interner,
        on_progress,
        &mut progress,
    );
    let rejected = match outcome {
        Ok(()) => None,
        Err(error) => match FileError::from_io(&error) {
            Some(file_error) => Some(file_error.clone()),
            None => return Err(error),
        },
    };

    // A rejected file is still read to its end, so its size and checksum in
    // the report describe the whole upload (unless it is over the size limit).
    let mut over_size_limit = matches!(rejected, Some(FileError::TooLarge { .. }));
    if rejected.is_some() && !over_size_limit {
        if let Err(error) = text.source_mut().drain() {
            match FileError::from_io(&error) {
                Some(FileError::TooLarge { .. }) => over_size_limit = true,
                _ => return Err(error),
            }
        }
    }

    match &rejected {
        Some(error) => report.reject(error),
        None => report.close(),
    }
    if text.encoding() == Encoding::Windows1252
        && !matches!(rejected, Some(FileError::Binary { .. }))
    {
        report.file_warning(
            "the file is not valid UTF-8, so it was read as Windows-1252 (Western European); check that accented \
             letters look right, or export it as CSV UTF-8"
                .to_owned(),
        );
    }

    let source = text.source();
    Ok(TableSummary {
        encoding: text.encoding(),
        delimiter: progress.delimiter,
        rows: progress.rows,
        size_bytes: source.bytes_read(),
        sha256: if over_size_limit {
            String::new()
        } else {
            source.sha256_hex()
        },
        rejected,
    })
}

fn parse<R: Read>(
    text: &mut TextReader<SourceReader<R>>,
    limits: &ReadLimits,
    sink: &mut dyn RowSink,
    report: &mut FileReport,
    interner: &mut NameInterner,
    on_progress: &mut dyn FnMut(u64, u64),
    progress: &mut Progress,
) -> io::Result<()> {
    text.start()?;

    let header_line = text.peek_header_line()?;
    if header_line.iter().all(u8::is_ascii_whitespace) {
        return Err(FileError::NoHeader.into_io());
    }
    // Excel writes `sep=;` as the first line in some locales: it names the
    // delimiter and is not the header.
    let declared = declared_delimiter(header_line);
    let delimiter = declared.unwrap_or_else(|| detect_delimiter(header_line));
    progress.delimiter = Some(delimiter);
    let mut skip_sep_line = declared.is_some();

    let mut parser = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(PARSER_BUFFER_BYTES)
        .from_reader(&mut *text);
    let mut record = StringRecord::new();

    // The first record with any content is the header (csv skips empty lines,
    // but not lines of spaces or bare delimiters).
    loop {
        if !read_record(&mut parser, &mut record)? || is_end_marker(&record) {
            return Err(FileError::NoHeader.into_io());
        }
        check_not_unclosed(&parser, &record, None)?;
        if is_blank(&record) {
            continue;
        }
        if skip_sep_line {
            skip_sep_line = false;
            continue;
        }
        break;
    }
    let (columns, empty_names) =
        Columns::from_header(record.iter(), interner).map_err(FileError::into_io)?;
    let missing = columns.missing(sink.required_columns());
    if !missing.is_empty() {
        return Err(FileError::MissingColumns {
            missing,
            found: columns.names(),
        }
        .into_io());
    }
    for position in empty_names {
        report.file_warning(format!(
            "column {position} has no name in the header, so its values are ignored; name the column or delete it"
        ));
    }
    sink.begin(&columns, report);
    let max_rows = sink.max_rows(limits);

    loop {
        if !read_record(&mut parser, &mut record)? || is_end_marker(&record) {
            break;
        }
        check_not_unclosed(&parser, &record, Some((progress.rows + 1, &columns)))?;
        if is_blank(&record) {
            continue;
        }

        progress.rows += 1;
        if progress.rows > max_rows {
            progress.rows -= 1;
            return Err(FileError::TooManyRows { max_rows }.into_io());
        }

        // Every record ends with a line end (the decoder adds a missing final
        // one), so the parser's line count is one past the record's last line.
        let embedded_lines = record
            .as_byte_record()
            .as_slice()
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count() as u64;
        let line = parser.position().line() - 1 - embedded_lines;
        let used_fields = used_field_count(&record);

        if embedded_lines > 0 {
            let wrong_width = record.len() != columns.width() && used_fields != columns.width();
            let too_long = embedded_lines + 1 > MAX_RECORD_LINES
                || record.as_byte_record().as_slice().len() > MAX_RECORD_BYTES;
            if wrong_width || too_long {
                return Err(FileError::RunawayQuote {
                    row: progress.rows,
                    line,
                    lines: embedded_lines + 1,
                }
                .into_io());
            }
        }

        let row = Row {
            number: progress.rows,
            line,
            record: &record,
            columns: &columns,
            used_fields,
        };
        if let Some(message) = row.wrong_field_count() {
            report.row_error(&row, None, message);
            report.skipped_rows += 1;
            progress.unidentified += 1;
            sink.unidentified_row();
        } else if !sink.row(&row, report) {
            report.skipped_rows += 1;
        }

        if progress.rows % PROGRESS_EVERY_ROWS == 0 {
            on_progress(parser.get_ref().source().bytes_read(), progress.rows);
        }
    }

    // When most rows disagree with the header, the header and the rows use
    // different delimiters: no row can be trusted.
    if progress.unidentified * 2 > progress.rows {
        return Err(FileError::WrongDelimiter {
            unidentified: progress.unidentified,
            rows: progress.rows,
            columns: columns.width(),
            delimiter: delimiter_label(delimiter),
        }
        .into_io());
    }

    sink.end(report);
    on_progress(parser.get_ref().source().bytes_read(), progress.rows);
    Ok(())
}

fn read_record<R: Read>(
    parser: &mut csv::Reader<R>,
    record: &mut StringRecord,
) -> io::Result<bool> {
    match parser.read_record(record) {
        Ok(more) => Ok(more),
        Err(error) => match error.into_kind() {
            csv::ErrorKind::Io(error) => Err(error),
            // The decoder already produced valid UTF-8, so this is a bug, not bad input.
            other => Err(io::Error::other(format!(
                "CSV parser failed on decoded text: {other:?}"
            ))),
        },
    }
}

/// Recognises the record the decoder's end marker forms after the last line.
fn is_end_marker(record: &StringRecord) -> bool {
    record.len() == 1 && record.as_byte_record().as_slice() == [END_MARKER]
}

/// Rejects a record that swallowed the end marker, which happens only when
/// a quoted value is still open at the end of the file. `data_row` is the
/// row number the record would have and the header's columns, or `None`
/// while the header is being read.
fn check_not_unclosed<R: Read>(
    parser: &csv::Reader<R>,
    record: &StringRecord,
    data_row: Option<(u64, &Columns)>,
) -> io::Result<()> {
    let bytes = record.as_byte_record().as_slice();
    if bytes.last() != Some(&END_MARKER) || record.is_empty() {
        return Ok(());
    }

    // No line end follows the marker, so the parser's line count is the
    // record's first line plus the line ends inside it. The open value is
    // the last field; the line ends of the fields before it move its start.
    let count_line_ends = |field: &[u8]| field.iter().filter(|&&byte| byte == b'\n').count() as u64;
    let line_ends = count_line_ends(bytes);
    let record_line = parser.position().line() - line_ends;
    let open_field = record.len() - 1;
    let before: u64 = (0..open_field)
        .map(|index| count_line_ends(record.as_byte_record().get(index).unwrap_or_default()))
        .sum();
    let (row, column) = match data_row {
        Some((row, columns)) => (
            Some(row),
            Some(
                columns
                    .name(open_field)
                    .map(|name| name.to_string())
                    .unwrap_or_else(|| format!("column {}", open_field + 1)),
            ),
        ),
        None => (None, None),
    };
    Err(FileError::UnclosedQuote {
        row,
        line: record_line + before,
        column,
    }
    .into_io())
}

/// Recognises Excel's `sep=X` first line and returns X when it is a
/// delimiter dsync reads.
fn declared_delimiter(line: &[u8]) -> Option<u8> {
    let mut line = line;
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    let rest = line
        .get(..4)?
        .eq_ignore_ascii_case(b"sep=")
        .then(|| &line[4..])?;
    let rest = if rest.len() > 1 {
        // A trailing delimiter or spaces after X.
        let first = rest[0];
        rest[1..]
            .iter()
            .all(|&byte| byte == first || byte == b' ' || byte == b'\r')
            .then_some(&rest[..1])?
    } else {
        rest
    };
    match rest {
        [delimiter @ (b',' | b';' | b'\t' | b'|')] => Some(*delimiter),
        _ => None,
    }
}

fn is_blank(record: &StringRecord) -> bool {
    record.iter().all(|field| trim_value(field).is_empty())
}

/// Counts fields up to the last one that is not empty after trimming.
fn used_field_count(record: &StringRecord) -> usize {
    let mut count = record.len();
    while count > 0 && trim_value(&record[count - 1]).is_empty() {
        count -= 1;
    }
    count
}

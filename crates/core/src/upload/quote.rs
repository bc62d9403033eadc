//! Tracking RFC 4180 quoting beside the CSV parser, to catch a quote that is never closed.
//!
//! The `csv` crate ends the last record at the end of the input even inside
//! quotes, so an unbalanced quote would silently swallow every row after it.
//! This tracker follows the same rules as the parser (a quote opens a value
//! only as the first byte of a field, `""` inside quotes is a literal quote,
//! other bytes after a closing quote continue the field unquoted) and reports
//! where the unclosed value began.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote seen inside a quoted value: it closes the value unless another quote follows.
    QuoteInQuoted,
}

#[derive(Debug)]
pub(crate) struct QuoteTracker {
    delimiter: u8,
    state: State,
    /// 1-based line of the next byte (input line ends are already `\n`).
    line: u64,
    /// Line where the current quoted value opened.
    open_line: u64,
}

impl QuoteTracker {
    pub(crate) fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            state: State::FieldStart,
            line: 1,
            open_line: 0,
        }
    }

    pub(crate) fn scan(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.line += 1;
            }
            self.state = match self.state {
                State::FieldStart | State::Unquoted if byte == self.delimiter || byte == b'\n' => {
                    State::FieldStart
                }
                State::FieldStart if byte == b'"' => {
                    self.open_line = self.line;
                    State::Quoted
                }
                State::FieldStart | State::Unquoted => State::Unquoted,
                State::Quoted if byte == b'"' => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                State::QuoteInQuoted if byte == b'"' => State::Quoted,
                State::QuoteInQuoted if byte == self.delimiter || byte == b'\n' => {
                    State::FieldStart
                }
                State::QuoteInQuoted => State::Unquoted,
            };
        }
    }

    /// Returns the line where a still-open quoted value began, when the input
    /// so far ends inside quotes.
    pub(crate) fn unclosed_quote_line(&self) -> Option<u64> {
        (self.state == State::Quoted).then_some(self.open_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unclosed(text: &str) -> Option<u64> {
        let mut tracker = QuoteTracker::new(b',');
        tracker.scan(text.as_bytes());
        tracker.unclosed_quote_line()
    }

    #[test]
    fn balanced_quotes_with_newline() {
        assert_eq!(unclosed("a,b\n1,\"x\ny\"\n2,z\n"), None);
    }

    #[test]
    fn doubled_quote_stays_inside() {
        assert_eq!(unclosed("a\n\"say \"\"hi\"\"\"\n"), None);
    }

    #[test]
    fn quote_inside_unquoted_field_is_literal() {
        assert_eq!(unclosed("a,b\n5'10\",x\n"), None);
    }

    #[test]
    fn unclosed_quote_reports_its_line() {
        assert_eq!(unclosed("a,b\n1,x\n2,\"oops\n3,y\n"), Some(3));
    }

    #[test]
    fn text_after_closing_quote_is_unquoted() {
        assert_eq!(unclosed("\"a\"b,c\n"), None);
    }
}

//! Decoding an upload into UTF-8 text with `\n` line ends, one chunk at a time.
//!
//! Design: the encoding is chosen from the first bytes (a UTF-8 or UTF-16
//! byte order mark). Otherwise the file is read as UTF-8 and each chunk is
//! validated. When the first invalid byte appears and every byte before it
//! was ASCII, decoding switches to Windows-1252 from that byte on. Because
//! both encodings agree on ASCII, the output is exactly what decoding the
//! whole file as Windows-1252 would give. When valid multi-byte UTF-8 came
//! before the invalid byte, the file mixes encodings and is rejected rather
//! than guessed. So no source is ever read twice, and memory stays at a few
//! fixed-size chunk buffers.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult, UTF_16BE, UTF_16LE, WINDOWS_1252};

use super::error::FileError;

/// Bytes read from the source at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// How many decoded bytes to look through for the header line when detecting
/// the delimiter.
const MAX_HEADER_SCAN_BYTES: usize = 1024 * 1024;

/// The encodings dsync reads, labelled as they appear in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl Encoding {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-bom",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

enum Mode {
    /// Validating UTF-8; `seen_non_ascii` records whether a valid multi-byte
    /// sequence has been passed on, which rules out switching encodings.
    Utf8 {
        seen_non_ascii: bool,
    },
    Decoder(Decoder),
}

/// The byte that ends the decoded text. No other NUL reaches the parser,
/// because a NUL in the upload rejects it as binary. After a complete last
/// line the parser returns the marker as a record of its own. When the file
/// ends inside a quoted value, the marker becomes the end of that value
/// instead, and that is how an unclosed quote is detected.
pub(crate) const END_MARKER: u8 = 0;

/// Decodes raw upload bytes into UTF-8 and replaces every CRLF and lone CR
/// by LF, inside quoted values too. At the end it adds a LF when the file
/// lacks one, so every record ends with a line end, and then [`END_MARKER`].
pub(crate) struct TextReader<R> {
    source: R,
    encoding: Encoding,
    mode: Mode,
    /// Raw bytes not yet decoded: `raw[raw_start..raw_end]`.
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    /// Source offset of `raw[0]`, for error messages.
    raw_base: u64,
    source_done: bool,
    /// Decoded text not yet handed out: `text[text_start..]`.
    text: Vec<u8>,
    text_start: usize,
    /// Whether the last byte decoded was a CR, so a following LF is dropped.
    after_cr: bool,
    /// Whether the last byte written to `text` was LF (true before any output
    /// so an empty file gets no added line end).
    ends_with_lf: bool,
    finished: bool,
}

impl<R: Read> TextReader<R> {
    pub(crate) fn new(source: R) -> Self {
        Self {
            source,
            encoding: Encoding::Utf8,
            mode: Mode::Utf8 {
                seen_non_ascii: false,
            },
            raw: vec![0u8; CHUNK_BYTES],
            raw_start: 0,
            raw_end: 0,
            raw_base: 0,
            source_done: false,
            text: Vec::with_capacity(CHUNK_BYTES * 3),
            text_start: 0,
            after_cr: false,
            ends_with_lf: true,
            finished: false,
        }
    }

    /// Reads the first bytes to choose the encoding. Call once, before reading.
    pub(crate) fn start(&mut self) -> io::Result<()> {
        while self.raw_end < 8 && !self.source_done {
            self.read_source()?;
        }
        self.sniff()
    }

    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Returns the underlying source, for its byte count and checksum.
    pub(crate) fn source(&self) -> &R {
        &self.source
    }

    pub(crate) fn source_mut(&mut self) -> &mut R {
        &mut self.source
    }

    /// Returns the decoded text up to and including the first line that is
    /// not blank, without consuming it (or less, at the end of the file or
    /// after `MAX_HEADER_SCAN_BYTES`).
    pub(crate) fn peek_header_line(&mut self) -> io::Result<&[u8]> {
        loop {
            let pending = &self.text[self.text_start..];
            if let Some(end) = first_non_blank_line_end(pending) {
                return Ok(&self.text[self.text_start..self.text_start + end]);
            }
            if self.finished || pending.len() > MAX_HEADER_SCAN_BYTES {
                return Ok(&self.text[self.text_start..]);
            }
            self.decode_chunk()?;
        }
    }

    fn sniff(&mut self) -> io::Result<()> {
        let head = &self.raw[..self.raw_end];

        if let Some(hint) = binary_signature(head) {
            return Err(FileError::Binary { hint }.into_io());
        }

        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.encoding = Encoding::Utf8Bom;
            self.raw_start = 3;
        } else if head.starts_with(&[0xFF, 0xFE]) {
            self.encoding = Encoding::Utf16Le;
            self.mode = Mode::Decoder(UTF_16LE.new_decoder_without_bom_handling());
            self.raw_start = 2;
        } else if head.starts_with(&[0xFE, 0xFF]) {
            self.encoding = Encoding::Utf16Be;
            self.mode = Mode::Decoder(UTF_16BE.new_decoder_without_bom_handling());
            self.raw_start = 2;
        }
        Ok(())
    }

    /// Moves undecoded bytes to the front of `raw` and reads more after them.
    fn read_source(&mut self) -> io::Result<()> {
        if self.raw_start > 0 {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_base += self.raw_start as u64;
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }

        let count = loop {
            match self.source.read(&mut self.raw[self.raw_end..]) {
                Ok(count) => break count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        };
        if count == 0 {
            self.source_done = true;
        }
        self.raw_end += count;
        Ok(())
    }

    /// Decodes at least one more chunk into `text`, or sets `finished`.
    fn decode_chunk(&mut self) -> io::Result<()> {
        if self.raw_start == self.raw_end
            || matches!(self.mode, Mode::Utf8 { .. }) && self.raw_end - self.raw_start < 4
        {
            if !self.source_done {
                self.read_source()?;
            }
        }

        let appended_from = self.text.len();
        match self.mode {
            Mode::Utf8 { .. } => self.decode_utf8()?,
            Mode::Decoder(_) => self.decode_other()?,
        }
        self.normalise_line_ends(appended_from)?;

        if self.source_done && self.raw_start == self.raw_end {
            if !self.ends_with_lf {
                self.text.push(b'\n');
                self.ends_with_lf = true;
            }
            self.text.push(END_MARKER);
            self.finished = true;
        }
        Ok(())
    }

    fn decode_utf8(&mut self) -> io::Result<()> {
        let Mode::Utf8 { seen_non_ascii } = &mut self.mode else {
            return Ok(());
        };
        let pending = &self.raw[self.raw_start..self.raw_end];

        let (valid_len, invalid) = match std::str::from_utf8(pending) {
            Ok(_) => (pending.len(), false),
            // An incomplete sequence at the end of a chunk waits for the next
            // chunk, unless the source has ended.
            Err(error) => (
                error.valid_up_to(),
                error.error_len().is_some() || self.source_done,
            ),
        };

        let valid = &pending[..valid_len];
        if !*seen_non_ascii && !valid.is_ascii() {
            *seen_non_ascii = true;
        }
        self.text.extend_from_slice(valid);
        self.raw_start += valid_len;

        if invalid {
            let byte_offset = self.raw_base + self.raw_start as u64;
            if *seen_non_ascii {
                return Err(FileError::MixedEncoding { byte_offset }.into_io());
            }
            self.encoding = Encoding::Windows1252;
            self.mode = Mode::Decoder(WINDOWS_1252.new_decoder_without_bom_handling());
            self.decode_other()?;
        }
        Ok(())
    }

    fn decode_other(&mut self) -> io::Result<()> {
        let Mode::Decoder(decoder) = &mut self.mode else {
            return Ok(());
        };
        let pending = &self.raw[self.raw_start..self.raw_end];

        // encoding_rs returns the exact worst case here. It is `None` only when
        // the length computation overflows, which a 64 KiB chunk cannot cause.
        let room = decoder
            .max_utf8_buffer_length_without_replacement(pending.len())
            .unwrap_or(pending.len() * 3 + 8);
        let old_len = self.text.len();
        self.text.resize(old_len + room, 0);

        let (result, read, written) = decoder.decode_to_utf8_without_replacement(
            pending,
            &mut self.text[old_len..],
            self.source_done,
        );
        self.text.truncate(old_len + written);

        if let DecoderResult::Malformed(_, _) = result {
            let byte_offset = self.raw_base + (self.raw_start + read) as u64;
            return Err(FileError::InvalidUtf16 { byte_offset }.into_io());
        }
        self.raw_start += read;
        Ok(())
    }

    /// Rewrites `text[from..]` in place so CRLF and lone CR become LF, and
    /// rejects NUL.
    fn normalise_line_ends(&mut self, from: usize) -> io::Result<()> {
        let len = self.text.len();
        if from == len {
            return Ok(());
        }

        // Fast path for LF-only text: one branch-free pass the compiler vectorises.
        let special = self.text[from..]
            .iter()
            .fold(false, |found, &byte| found | (byte == b'\r') | (byte == 0));
        if !special && !(self.after_cr && self.text[from] == b'\n') {
            self.after_cr = false;
            self.ends_with_lf = self.text[len - 1] == b'\n';
            return Ok(());
        }

        let mut read = from;
        let mut write = from;
        if self.after_cr && self.text[read] == b'\n' {
            read += 1;
        }
        self.after_cr = false;

        while read < len {
            let Some(offset) = self.text[read..]
                .iter()
                .position(|&byte| byte == b'\r' || byte == 0)
            else {
                self.text.copy_within(read..len, write);
                write += len - read;
                break;
            };
            let at = read + offset;
            if self.text[at] == 0 {
                return Err(FileError::Binary {
                    hint: nul_hint(self.text[..at].last()),
                }
                .into_io());
            }

            self.text.copy_within(read..at, write);
            write += at - read;
            self.text[write] = b'\n';
            write += 1;

            read = at + 1;
            if read == len {
                self.after_cr = true;
            } else if self.text[read] == b'\n' {
                read += 1;
            }
        }
        self.text.truncate(write);

        if write > from {
            self.ends_with_lf = self.text[write - 1] == b'\n';
        }
        Ok(())
    }
}

impl<R: Read> Read for TextReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.text_start == self.text.len() {
            self.text.clear();
            self.text_start = 0;
            while self.text.is_empty() && !self.finished {
                self.decode_chunk()?;
            }
            if self.text.is_empty() {
                return Ok(0);
            }
        }

        let pending = &self.text[self.text_start..];
        let count = pending.len().min(buf.len());
        buf[..count].copy_from_slice(&pending[..count]);
        self.text_start += count;
        Ok(count)
    }
}

/// Returns the end (after the LF) of the first line with anything but
/// whitespace on it.
fn first_non_blank_line_end(text: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(offset) = text[start..].iter().position(|&byte| byte == b'\n') {
        let end = start + offset + 1;
        if text[start..end]
            .iter()
            .any(|byte| !byte.is_ascii_whitespace())
        {
            return Some(end);
        }
        start = end;
    }
    None
}

/// Explains a NUL byte: after a printable ASCII byte it is most likely the
/// high half of UTF-16 text that lacks its byte order mark.
fn nul_hint(previous: Option<&u8>) -> &'static str {
    if previous.is_some_and(u8::is_ascii_graphic) {
        "it contains NUL bytes, as UTF-16 text without a byte order mark does"
    } else {
        "it contains NUL bytes, as binary files do"
    }
}

/// Names well-known binary formats that people upload instead of CSV.
fn binary_signature(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"PK\x03\x04") {
        Some("it is a ZIP archive, which is what an .xlsx workbook is")
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        Some("it is an old-style .xls workbook")
    } else if head.starts_with(&[0x1F, 0x8B]) {
        Some("it is gzip-compressed")
    } else if head.starts_with(b"%PDF") {
        Some("it is a PDF document")
    } else if head.starts_with(&[0xFF, 0xFE, 0x00, 0x00])
        || head.starts_with(&[0x00, 0x00, 0xFE, 0xFF])
    {
        Some("it is UTF-32 text, which dsync does not read")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> io::Result<(String, Encoding)> {
        let mut reader = TextReader::new(bytes);
        reader.start()?;
        let mut text = String::new();
        reader.read_to_string(&mut text)?;
        let text = text
            .strip_suffix('\0')
            .expect("the end marker comes last")
            .to_owned();
        Ok((text, reader.encoding()))
    }

    fn decode_error(bytes: &[u8]) -> FileError {
        let error = decode(bytes).expect_err("decoding should fail");
        FileError::from_io(&error)
            .expect("a file-level error")
            .clone()
    }

    /// A reader that returns one byte per call, to exercise chunk boundaries.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn utf8_plain() {
        let (text, encoding) = decode("a,b\nJosé,1\n".as_bytes()).unwrap();
        assert_eq!(text, "a,b\nJosé,1\n");
        assert_eq!(encoding, Encoding::Utf8);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let (text, encoding) = decode(b"\xEF\xBB\xBFuser_id\r\n1\r\n").unwrap();
        assert_eq!(text, "user_id\n1\n");
        assert_eq!(encoding, Encoding::Utf8Bom);
    }

    #[test]
    fn utf16le_with_bom() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "a\tb\r\nSøren\tx\r\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let (text, encoding) = decode(&bytes).unwrap();
        assert_eq!(text, "a\tb\nSøren\tx\n");
        assert_eq!(encoding, Encoding::Utf16Le);
    }

    #[test]
    fn utf16be_with_bom() {
        let mut bytes = vec![0xFE, 0xFF];
        for unit in "a\nZoë\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        let (text, encoding) = decode(&bytes).unwrap();
        assert_eq!(text, "a\nZoë\n");
        assert_eq!(encoding, Encoding::Utf16Be);
    }

    #[test]
    fn windows1252_after_ascii() {
        let (text, encoding) = decode(b"a;b\nM\xE4rkte;\x80\n").unwrap();
        assert_eq!(text, "a;b\nMärkte;€\n");
        assert_eq!(encoding, Encoding::Windows1252);
    }

    #[test]
    fn windows1252_late_in_file() {
        let mut bytes = b"a,b\n".repeat(40_000);
        bytes.extend_from_slice(b"M\xFCller,x\n");
        let (text, encoding) = decode(&bytes).unwrap();
        assert!(text.ends_with("Müller,x\n"));
        assert_eq!(encoding, Encoding::Windows1252);
    }

    #[test]
    fn mixed_encoding_rejected() {
        let error = decode_error(b"Jos\xC3\xA9\nM\xFCller\n");
        assert!(matches!(error, FileError::MixedEncoding { .. }));
    }

    #[test]
    fn utf8_split_across_reads() {
        let source = "x,Søren Ødegård\r\n".as_bytes();
        let mut reader = TextReader::new(OneByte(source));
        reader.start().unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "x,Søren Ødegård\n\0");
        assert_eq!(reader.encoding(), Encoding::Utf8);
    }

    #[test]
    fn crlf_split_across_reads() {
        let mut reader = TextReader::new(OneByte(b"a\r\nb\rc\r\n"));
        reader.start().unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "a\nb\nc\n\0");
    }

    #[test]
    fn cr_only_line_ends() {
        let (text, _) = decode(b"a,b\r1,2\r3,4").unwrap();
        assert_eq!(text, "a,b\n1,2\n3,4\n");
    }

    #[test]
    fn final_line_end_added() {
        let (text, _) = decode(b"a\n1").unwrap();
        assert_eq!(text, "a\n1\n");
    }

    #[test]
    fn empty_input_stays_empty() {
        let (text, _) = decode(b"").unwrap();
        assert_eq!(text, "");
    }

    #[test]
    fn nul_byte_is_binary() {
        assert!(matches!(
            decode_error(b"a,b\n\x00\x01\x02"),
            FileError::Binary { .. }
        ));
    }

    #[test]
    fn utf16_without_bom_is_binary() {
        let error = decode_error(b"u\x00s\x00e\x00r\x00");
        assert!(matches!(error, FileError::Binary { hint } if hint.contains("UTF-16")));
    }

    #[test]
    fn xlsx_signature_is_binary() {
        assert!(matches!(
            decode_error(b"PK\x03\x04rest"),
            FileError::Binary { .. }
        ));
    }

    #[test]
    fn odd_utf16_length_is_invalid() {
        assert!(matches!(
            decode_error(b"\xFF\xFEa\x00b"),
            FileError::InvalidUtf16 { .. }
        ));
    }

    #[test]
    fn header_peek_skips_blank_lines() {
        let mut reader = TextReader::new(&b"\n  \nuser_id;x\n1;2\n"[..]);
        reader.start().unwrap();
        assert_eq!(reader.peek_header_line().unwrap(), b"\n  \nuser_id;x\n");
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "\n  \nuser_id;x\n1;2\n\0");
    }

    /// A reader that returns the input in chunks of the given sizes, cycling.
    struct Chunked<'a> {
        bytes: &'a [u8],
        sizes: Vec<usize>,
        next: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.next % self.sizes.len()]
                .min(buf.len())
                .min(self.bytes.len());
            self.next += 1;
            buf[..size].copy_from_slice(&self.bytes[..size]);
            self.bytes = &self.bytes[size..];
            Ok(size)
        }
    }

    proptest::proptest! {
        #[test]
        fn line_ends_normalised_at_any_chunking(
            text in "[a,é\r\n]{1,60}",
            sizes in proptest::collection::vec(1usize..7, 1..5),
        ) {
            let mut reader = TextReader::new(Chunked { bytes: text.as_bytes(), sizes, next: 0 });
            reader.start().unwrap();
            let mut decoded = String::new();
            reader.read_to_string(&mut decoded).unwrap();

            let mut expected = text.replace("\r\n", "\n").replace('\r', "\n");
            if !expected.ends_with('\n') {
                expected.push('\n');
            }
            expected.push('\0');
            proptest::prop_assert_eq!(decoded, expected);
        }
    }
}

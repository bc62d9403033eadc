//! The raw bytes of an upload: counted, hashed and capped at the size limit.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::error::FileError;

/// Wraps the uploaded bytes before any decoding, so the checksum and size
/// describe the file exactly as received.
pub(crate) struct SourceReader<R> {
    inner: R,
    hasher: Sha256,
    bytes_read: u64,
    max_file_bytes: u64,
}

impl<R: Read> SourceReader<R> {
    pub(crate) fn new(inner: R, max_file_bytes: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes_read: 0,
            max_file_bytes,
        }
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads and hashes whatever is left, so the checksum covers the whole file
    /// even when parsing stopped early. Stops at the size limit like `read`.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        let mut buffer = vec![0u8; 64 * 1024];
        while self.read(&mut buffer)? > 0 {}
        Ok(())
    }

    /// Returns the lowercase hex SHA-256 of the bytes read so far.
    pub(crate) fn sha256_hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.hasher.update(&buf[..count]);
        self.bytes_read += count as u64;

        if self.bytes_read > self.max_file_bytes {
            return Err(FileError::TooLarge {
                max_file_bytes: self.max_file_bytes,
            }
            .into_io());
        }
        Ok(count)
    }
}

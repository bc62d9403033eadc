//! Reading uploads: file kinds, decoding, delimiter detection, parsing and validation.

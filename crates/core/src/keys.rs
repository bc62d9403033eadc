//! SSH public key validation and fingerprints.
//!
//! [`parse_public_key`] takes what a person pasted or uploaded as "their SSH
//! key" and returns either a checked [`PublicKey`] or a [`KeyError`] whose
//! message explains how to fix the input. The input is one OpenSSH public key
//! line, `type base64 [comment]`; an RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----`
//! block (as PuTTYgen and `ssh-keygen -e` write it) is converted to that form.
//!
//! The key blob is parsed from the SSH wire format (RFC 4251 section 5): a
//! sequence of `string` and `mpint` fields, each a big-endian `u32` length
//! followed by that many bytes.
//!
//! Note that no error message contains any part of the input except the names
//! of known key types, so that a private key pasted by mistake never ends up in
//! a log or an HTTP response.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Maximum size of the key text, in bytes, after surrounding whitespace is
/// removed. An 8192-bit RSA key line with a comment fits.
pub const MAX_KEY_TEXT_BYTES: usize = 2048;

/// Minimum RSA modulus size, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// A key type that dsync accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum KeyType {
    #[serde(rename = "ssh-ed25519")]
    Ed25519,
    #[serde(rename = "ssh-rsa")]
    Rsa,
    #[serde(rename = "ecdsa-sha2-nistp256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-sha2-nistp384")]
    EcdsaP384,
    #[serde(rename = "ecdsa-sha2-nistp521")]
    EcdsaP521,
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [
        KeyType::Ed25519,
        KeyType::Rsa,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
    ];

    /// The type name as it appears in a key line and inside the key blob.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::Rsa => "ssh-rsa",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
        }
    }

    /// The algorithm name `ssh-keygen -l` prints in brackets after the comment.
    pub fn keygen_label(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ED25519",
            KeyType::Rsa => "RSA",
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => "ECDSA",
        }
    }

    fn from_name(name: &str) -> Option<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|key_type| key_type.as_str() == name)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text form the key arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum KeyFormat {
    /// One `type base64 [comment]` line.
    #[serde(rename = "openssh")]
    OpenSsh,
    /// An RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----` block, converted.
    #[serde(rename = "rfc4716")]
    Rfc4716,
}

/// A validated SSH public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicKey {
    pub key_type: KeyType,
    /// Key size as `ssh-keygen -l` prints it: the RSA modulus size, the curve
    /// size for ECDSA, 256 for Ed25519.
    pub bits: u32,
    pub comment: Option<String>,
    /// `SHA256:` and the unpadded base64 SHA-256 digest of the key blob, as
    /// `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `type base64`, without options or comment.
    pub canonical_line: String,
    pub format: KeyFormat,
}

impl PublicKey {
    /// Returns the key as one OpenSSH line, with the comment when there is one.
    pub fn openssh_line(&self) -> String {
        match &self.comment {
            Some(comment) => format!("{} {}", self.canonical_line, comment),
            None => self.canonical_line.clone(),
        }
    }
}

/// The kind of private key found where a public key was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateKeyFormat {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----`, or its base64 body alone.
    OpenSsh,
    /// A PEM block such as `-----BEGIN RSA PRIVATE KEY-----`.
    Pem,
    /// A PuTTY `.ppk` file.
    Putty,
    /// `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` (ssh.com / Tectia).
    Ssh2,
}

impl PrivateKeyFormat {
    fn description(self) -> &'static str {
        match self {
            PrivateKeyFormat::OpenSsh => "an OpenSSH private key",
            PrivateKeyFormat::Pem => "a PEM private key",
            PrivateKeyFormat::Putty => "a PuTTY private key file",
            PrivateKeyFormat::Ssh2 => "an SSH2 private key",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            PrivateKeyFormat::OpenSsh | PrivateKeyFormat::Pem | PrivateKeyFormat::Ssh2 => {
                "paste the public key instead: the matching .pub file, or the output of `ssh-keygen -y -f PRIVATE_KEY_FILE`"
            }
            PrivateKeyFormat::Putty => {
                "paste the public key instead: in PuTTYgen, load the key and copy the box \"Public key for pasting into OpenSSH authorized_keys file\""
            }
        }
    }
}

/// A PEM block that holds a public key or certificate in a non-SSH format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemKind {
    /// `-----BEGIN PUBLIC KEY-----` (X.509 SubjectPublicKeyInfo, as OpenSSL writes it).
    SubjectPublicKeyInfo,
    /// `-----BEGIN RSA PUBLIC KEY-----` (PKCS #1).
    RsaPublicKey,
    /// Any other PEM block, such as an X.509 certificate.
    Other,
}

/// The reason a key was rejected. Each message ends with the fix and never
/// contains key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty; paste one OpenSSH public key line, such as the contents of ~/.ssh/id_ed25519.pub")]
    Empty,

    #[error("the key is not UTF-8 text; paste the contents of the .pub file, not a binary file")]
    NotUtf8,

    #[error("the key is {bytes} bytes, over the {MAX_KEY_TEXT_BYTES}-byte limit; use an Ed25519 key (`ssh-keygen -t ed25519`) or a shorter comment")]
    TooLong { bytes: usize },

    #[error("this is {}, which must stay secret and is not stored; {}", .format.description(), .format.fix())]
    PrivateKey { format: PrivateKeyFormat },

    #[error("{}", pem_message(*.kind))]
    Pem { kind: PemKind },

    #[error("found {count} keys; submit one key at a time")]
    MultipleKeys { count: usize },

    #[error("the key is split over {lines} lines; join them into one line of the form `type base64 [comment]`")]
    LineBreaks { lines: usize },

    #[error("the line starts with authorized_keys options (such as from=, command= or no-pty); remove the options before the key type")]
    OptionsPrefix,

    #[error("the line starts with base64 key data; put the key type before it, as in `ssh-ed25519 AAAA... comment`")]
    MissingType,

    #[error("{}; use one of {}", unknown_type_subject(.name.as_deref()), accepted_types())]
    UnknownType {
        /// The type word, only when it looks like a type name and not like key data.
        name: Option<String>,
    },

    #[error("DSA keys (ssh-dss) are not accepted because they are limited to 1024 bits and OpenSSH disables them by default since version 7.0; generate a new key with `ssh-keygen -t ed25519`")]
    Dsa,

    #[error("security key (FIDO) types such as sk-ssh-ed25519@openssh.com are not accepted; generate a key without a security key with `ssh-keygen -t ed25519`")]
    SecurityKey,

    #[error("this is an OpenSSH certificate (*-cert-v01@openssh.com), not a plain public key; submit the public key it was issued for, the .pub file without -cert in its name")]
    Certificate,

    #[error("there is no key data after the key type `{key_type}`; paste the whole line, `type base64 [comment]`")]
    MissingKeyData { key_type: KeyType },

    #[error("the key data is not valid base64; copy the whole line again from the .pub file, without line breaks or missing characters")]
    InvalidBase64,

    #[error("the key data is malformed ({reason}); copy the whole line again from the .pub file")]
    Malformed { reason: &'static str },

    #[error("the line says `{line_type}` but the key data is {}; use the type word from the original .pub file", blob_type_description(.blob_type.as_deref()))]
    TypeMismatch {
        line_type: KeyType,
        /// The type name inside the blob, when it is a known one.
        blob_type: Option<String>,
    },

    #[error("the RSA key is {bits} bits but at least {MIN_RSA_BITS} are required; generate a new key with `ssh-keygen -t ed25519` (or `ssh-keygen -t rsa -b 4096`)")]
    RsaTooShort { bits: u32 },

    #[error("the SSH2 public key block is malformed ({reason}); export the key again with `ssh-keygen -e -f KEY.pub` or PuTTYgen, or paste the one-line OpenSSH form")]
    InvalidRfc4716 { reason: &'static str },

    #[error("the key comment contains a control character; remove it or remove the comment")]
    CommentControlCharacter,
}

impl KeyError {
    /// A stable machine-readable name for the error, for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Empty => "empty",
            KeyError::NotUtf8 => "not_utf8",
            KeyError::TooLong { .. } => "too_long",
            KeyError::PrivateKey { .. } => "private_key",
            KeyError::Pem { .. } => "pem",
            KeyError::MultipleKeys { .. } => "multiple_keys",
            KeyError::LineBreaks { .. } => "line_breaks",
            KeyError::OptionsPrefix => "options_prefix",
            KeyError::MissingType => "missing_type",
            KeyError::UnknownType { .. } => "unknown_type",
            KeyError::Dsa => "dsa",
            KeyError::SecurityKey => "security_key",
            KeyError::Certificate => "certificate",
            KeyError::MissingKeyData { .. } => "missing_key_data",
            KeyError::InvalidBase64 => "invalid_base64",
            KeyError::Malformed { .. } => "malformed",
            KeyError::TypeMismatch { .. } => "type_mismatch",
            KeyError::RsaTooShort { .. } => "rsa_too_short",
            KeyError::InvalidRfc4716 { .. } => "invalid_rfc4716",
            KeyError::CommentControlCharacter => "comment_control_character",
        }
    }
}

fn pem_message(kind: PemKind) -> &'static str {
    match kind {
        PemKind::SubjectPublicKeyInfo => {
            "this is a PEM public key (BEGIN PUBLIC KEY), not the OpenSSH format; convert it with `ssh-keygen -i -m PKCS8 -f KEY.pem`"
        }
        PemKind::RsaPublicKey => {
            "this is a PEM RSA public key (BEGIN RSA PUBLIC KEY), not the OpenSSH format; convert it with `ssh-keygen -i -m PEM -f KEY.pem`"
        }
        PemKind::Other => {
            "this is a PEM block, not an OpenSSH public key; paste one line of the form `type base64 [comment]` from a .pub file"
        }
    }
}

fn unknown_type_subject(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("unsupported key type `{name}`"),
        None => "the line does not start with a known key type".to_owned(),
    }
}

fn accepted_types() -> String {
    let names: Vec<&str> = KeyType::ALL
        .iter()
        .map(|key_type| key_type.as_str())
        .collect();
    names.join(", ")
}

fn blob_type_description(blob_type: Option<&str>) -> String {
    match blob_type {
        Some(name) => format!("`{name}`"),
        None => "of an unknown type".to_owned(),
    }
}

/// Computes the SHA-256 fingerprint of a key blob, `SHA256:` followed by the
/// unpadded base64 digest, as `ssh-keygen -l` prints it.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!("SHA256:{}", STANDARD_NO_PAD.encode(digest))
}

/// Parses and validates public key text given as bytes, rejecting text that is
/// not UTF-8.
pub fn parse_public_key_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyError::NotUtf8)?;
    parse_public_key(text)
}

/// Parses and validates one SSH public key: an OpenSSH line
/// `type base64 [comment]` or an RFC 4716 block, which is converted.
///
/// Blank lines and `#` comment lines around the key are ignored, as in an
/// `authorized_keys` file.
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }

    // Private keys are recognised before the size check because most of them
    // are over the limit, and the person needs to hear that it is private.
    if let Some(format) = detect_private_key(text) {
        return Err(KeyError::PrivateKey { format });
    }

    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(KeyError::TooLong { bytes: text.len() });
    }

    let first_line = text.lines().next().unwrap_or_default().trim();
    if first_line == RFC4716_BEGIN {
        return parse_rfc4716(text);
    }
    if let Some(kind) = detect_pem(first_line) {
        return Err(KeyError::Pem { kind });
    }

    let key_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    match key_lines.as_slice() {
        [] => Err(KeyError::Empty),
        [line] => parse_openssh_line(line),
        lines => {
            let keys = lines
                .iter()
                .filter(|line| line_names_key_type(line))
                .count();
            if keys > 1 {
                Err(KeyError::MultipleKeys { count: keys })
            } else {
                Err(KeyError::LineBreaks { lines: lines.len() })
            }
        }
    }
}

/// The base64 of `openssh-key-v1`, the magic that opens the body of every
/// OpenSSH private key.
const OPENSSH_PRIVATE_MAGIC_BASE64: &str = "b3BlbnNzaC1rZXktdjE";

fn detect_private_key(text: &str) -> Option<PrivateKeyFormat> {
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") && line.contains("PRIVATE KEY") {
            if line.contains("OPENSSH") {
                return Some(PrivateKeyFormat::OpenSsh);
            }
            return Some(PrivateKeyFormat::Pem);
        }
        if line.starts_with("PuTTY-User-Key-File-") {
            return Some(PrivateKeyFormat::Putty);
        }
        if line.starts_with("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY") {
            return Some(PrivateKeyFormat::Ssh2);
        }
        if line
            .split_whitespace()
            .any(|word| word.starts_with(OPENSSH_PRIVATE_MAGIC_BASE64))
        {
            return Some(PrivateKeyFormat::OpenSsh);
        }
    }
    None
}

fn detect_pem(first_line: &str) -> Option<PemKind> {
    if !first_line.starts_with("-----BEGIN ") {
        return None;
    }
    if first_line.starts_with("-----BEGIN PUBLIC KEY-----") {
        Some(PemKind::SubjectPublicKeyInfo)
    } else if first_line.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        Some(PemKind::RsaPublicKey)
    } else {
        Some(PemKind::Other)
    }
}

/// The verdict on a type word found in a key line or blob.
enum TypeName {
    Accepted(KeyType),
    Rejected(KeyError),
    Unknown,
}

fn classify_type_name(name: &str) -> TypeName {
    if let Some(key_type) = KeyType::from_name(name) {
        return TypeName::Accepted(key_type);
    }
    // Certificates are checked first: `sk-ssh-ed25519-cert-v01@openssh.com`
    // is a certificate before it is a security key.
    if name.ends_with("-cert-v01@openssh.com") || name.ends_with("-cert-v00@openssh.com") {
        return TypeName::Rejected(KeyError::Certificate);
    }
    if name.starts_with("sk-") && name.ends_with("@openssh.com") {
        return TypeName::Rejected(KeyError::SecurityKey);
    }
    if name == "ssh-dss" {
        return TypeName::Rejected(KeyError::Dsa);
    }
    TypeName::Unknown
}

fn is_key_type_word(word: &str) -> bool {
    !matches!(classify_type_name(word), TypeName::Unknown)
}

/// authorized_keys option names that take no value (OpenSSH 9 sshd(8)).
const FLAG_OPTIONS: [&str; 14] = [
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "restrict",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];

fn looks_like_options(first_word: &str) -> bool {
    let first_option = first_word
        .split(',')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    first_word.contains('=') || FLAG_OPTIONS.contains(&first_option.as_str())
}

fn line_names_key_type(line: &str) -> bool {
    line.split_whitespace().any(is_key_type_word)
}

/// Returns the type word for an error message only when it cannot be key data:
/// short, lowercase, and with a hyphen, which standard base64 never has.
fn printable_type_name(word: &str) -> Option<String> {
    let plausible = word.len() <= 64
        && word.contains('-')
        && word.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-@.".contains(&byte)
        });
    plausible.then(|| word.to_owned())
}

/// Splits off the first whitespace-separated word. Any Unicode whitespace
/// separates, so a non-breaking space copied from a web page still works.
fn split_first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim_start()),
        None => (text, ""),
    }
}

fn parse_openssh_line(line: &str) -> Result<PublicKey, KeyError> {
    let (type_word, rest) = split_first_word(line);

    let key_type = match classify_type_name(type_word) {
        TypeName::Accepted(key_type) => key_type,
        TypeName::Rejected(error) => return Err(error),
        TypeName::Unknown => return Err(unknown_first_word(type_word, rest)),
    };

    let (data, comment) = split_first_word(rest);
    if data.is_empty() {
        return Err(KeyError::MissingKeyData { key_type });
    }
    reject_second_key_in_comment(comment)?;

    let blob = decode_base64(data).ok_or(KeyError::InvalidBase64)?;
    let parsed = parse_blob(&blob, Some(key_type))?;
    build_public_key(&blob, parsed, comment, KeyFormat::OpenSsh)
}

/// Chooses the error for a line whose first word is not a key type.
fn unknown_first_word(first_word: &str, rest: &str) -> KeyError {
    if looks_like_options(first_word) || rest.split_whitespace().any(is_key_type_word) {
        return KeyError::OptionsPrefix;
    }
    if first_word.starts_with("AAAA") {
        return KeyError::MissingType;
    }
    KeyError::UnknownType {
        name: printable_type_name(first_word),
    }
}

/// Catches two keys pasted onto one line, which would otherwise pass with the
/// second key taken as the first one's comment.
fn reject_second_key_in_comment(comment: &str) -> Result<(), KeyError> {
    let words: Vec<&str> = comment.split_whitespace().collect();
    let extra_keys = words
        .windows(2)
        .filter(|pair| is_key_type_word(pair[0]) && pair[1].starts_with("AAAA"))
        .count();
    if extra_keys > 0 {
        return Err(KeyError::MultipleKeys {
            count: extra_keys + 1,
        });
    }
    Ok(())
}

/// Decodes standard base64, with or without `=` padding.
fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engine = GeneralPurpose::new(&alphabet::STANDARD, config);
    engine.decode(data).ok()
}

fn build_public_key(
    blob: &[u8],
    parsed: ParsedBlob,
    comment: &str,
    format: KeyFormat,
) -> Result<PublicKey, KeyError> {
    if comment.chars().any(|c| c.is_control() && c != '\t') {
        return Err(KeyError::CommentControlCharacter);
    }
    if parsed.key_type == KeyType::Rsa && parsed.bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooShort { bits: parsed.bits });
    }

    Ok(PublicKey {
        key_type: parsed.key_type,
        bits: parsed.bits,
        comment: (!comment.is_empty()).then(|| comment.to_owned()),
        fingerprint: fingerprint_sha256(blob),
        canonical_line: format!("{} {}", parsed.key_type.as_str(), STANDARD.encode(blob)),
        format,
    })
}

const RFC4716_BEGIN: &str = "---- BEGIN SSH2 PUBLIC KEY ----";
const RFC4716_END: &str = "---- END SSH2 PUBLIC KEY ----";

/// Converts an RFC 4716 block: `Tag: value` headers (a trailing `\` continues
/// a header on the next line), then base64 lines, then the END line. The
/// `Comment` header, without its surrounding quotes, becomes the key comment.
fn parse_rfc4716(text: &str) -> Result<PublicKey, KeyError> {
    let mut lines = text.lines().map(str::trim).skip(1);
    let mut comment = String::new();
    let mut body = String::new();
    let mut ended = false;
    let mut pending_header: Option<String> = None;

    for line in lines.by_ref() {
        if let Some(mut header) = pending_header.take() {
            header.push_str(line);
            finish_or_continue_header(header, &mut pending_header, &mut comment)?;
            continue;
        }
        if line == RFC4716_END {
            ended = true;
            break;
        }
        if line.is_empty() {
            continue;
        }
        if line.contains(':') {
            if !body.is_empty() {
                return Err(KeyError::InvalidRfc4716 {
                    reason: "a header line follows the key data",
                });
            }
            finish_or_continue_header(line.to_owned(), &mut pending_header, &mut comment)?;
            continue;
        }
        body.push_str(line);
    }

    if pending_header.is_some() {
        return Err(KeyError::InvalidRfc4716 {
            reason: "the last header line ends with a continuation backslash",
        });
    }
    if !ended {
        return Err(KeyError::InvalidRfc4716 {
            reason: "the END line is missing",
        });
    }
    let trailing: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    if !trailing.is_empty() {
        let blocks = trailing
            .iter()
            .filter(|line| **line == RFC4716_BEGIN)
            .count();
        if blocks > 0 {
            return Err(KeyError::MultipleKeys { count: blocks + 1 });
        }
        return Err(KeyError::InvalidRfc4716 {
            reason: "there is text after the END line",
        });
    }
    if body.is_empty() {
        return Err(KeyError::InvalidRfc4716 {
            reason: "there is no key data",
        });
    }

    let blob = decode_base64(&body).ok_or(KeyError::InvalidBase64)?;
    let parsed = parse_blob(&blob, None)?;
    build_public_key(&blob, parsed, comment.trim(), KeyFormat::Rfc4716)
}

/// Stores a complete header, or keeps it pending when it ends with `\`.
fn finish_or_continue_header(
    header: String,
    pending_header: &mut Option<String>,
    comment: &mut String,
) -> Result<(), KeyError> {
    if let Some(without_backslash) = header.strip_suffix('\\') {
        *pending_header = Some(without_backslash.to_owned());
        return Ok(());
    }

    let Some((tag, value)) = header.split_once(':') else {
        return Err(KeyError::InvalidRfc4716 {
            reason: "a header line has no colon",
        });
    };
    // Tags are matched case-insensitively to accept what any exporter writes.
    if tag.trim().eq_ignore_ascii_case("comment") {
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(value);
        *comment = unquoted.to_owned();
    }
    Ok(())
}

/// The facts read from a key blob.
struct ParsedBlob {
    key_type: KeyType,
    bits: u32,
}

/// Reads SSH wire-format fields from a key blob.
struct WireReader<'a> {
    rest: &'a [u8],
}

impl<'a> WireReader<'a> {
    fn read_string(&mut self, truncated: &'static str) -> Result<&'a [u8], KeyError> {
        let malformed = KeyError::Malformed { reason: truncated };
        if self.rest.len() < 4 {
            return Err(malformed);
        }
        let (length_bytes, after_length) = self.rest.split_at(4);
        let length = u32::from_be_bytes([
            length_bytes[0],
            length_bytes[1],
            length_bytes[2],
            length_bytes[3],
        ]) as usize;
        if after_length.len() < length {
            return Err(malformed);
        }
        let (value, rest) = after_length.split_at(length);
        self.rest = rest;
        Ok(value)
    }

    /// Reads a non-negative `mpint` and returns its magnitude with leading zero
    /// bytes removed. Like OpenSSH, leading zeros beyond the sign byte are
    /// tolerated.
    fn read_positive_mpint(
        &mut self,
        truncated: &'static str,
        negative: &'static str,
    ) -> Result<&'a [u8], KeyError> {
        let value = self.read_string(truncated)?;
        if value.first().is_some_and(|byte| byte & 0x80 != 0) {
            return Err(KeyError::Malformed { reason: negative });
        }
        let first_nonzero = value
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(value.len());
        Ok(&value[first_nonzero..])
    }

    fn finish(&self) -> Result<(), KeyError> {
        if !self.rest.is_empty() {
            return Err(KeyError::Malformed {
                reason: "there are extra bytes after the key",
            });
        }
        Ok(())
    }
}

/// Parses a whole key blob, checking every field and that nothing follows.
/// `line_type` is the type word of the key line, which the type name inside
/// the blob must match.
fn parse_blob(blob: &[u8], line_type: Option<KeyType>) -> Result<ParsedBlob, KeyError> {
    let mut reader = WireReader { rest: blob };
    let type_bytes = reader.read_string("the key type is cut off")?;
    let type_name = std::str::from_utf8(type_bytes).unwrap_or_default();

    if let Some(line_type) = line_type {
        if type_name != line_type.as_str() {
            let blob_type = is_key_type_word(type_name).then(|| type_name.to_owned());
            return Err(KeyError::TypeMismatch {
                line_type,
                blob_type,
            });
        }
    }

    let key_type = match classify_type_name(type_name) {
        TypeName::Accepted(key_type) => key_type,
        TypeName::Rejected(error) => return Err(error),
        TypeName::Unknown => {
            return Err(KeyError::Malformed {
                reason: "the key data does not start with a known key type",
            })
        }
    };

    let bits = match key_type {
        KeyType::Ed25519 => {
            let key = reader.read_string("the Ed25519 key is cut off")?;
            if key.len() != 32 {
                return Err(KeyError::Malformed {
                    reason: "the Ed25519 key is not 32 bytes",
                });
            }
            256
        }
        KeyType::Rsa => parse_rsa_fields(&mut reader)?,
        KeyType::EcdsaP256 => parse_ecdsa_fields(&mut reader, "nistp256", 256)?,
        KeyType::EcdsaP384 => parse_ecdsa_fields(&mut reader, "nistp384", 384)?,
        KeyType::EcdsaP521 => parse_ecdsa_fields(&mut reader, "nistp521", 521)?,
    };

    reader.finish()?;
    Ok(ParsedBlob { key_type, bits })
}

/// Reads `mpint e, mpint n` and returns the modulus size in bits.
fn parse_rsa_fields(reader: &mut WireReader<'_>) -> Result<u32, KeyError> {
    let exponent = reader.read_positive_mpint(
        "the RSA exponent is cut off",
        "the RSA exponent is negative",
    )?;
    let modulus =
        reader.read_positive_mpint("the RSA modulus is cut off", "the RSA modulus is negative")?;

    // A valid public exponent is odd and at least 3, and a product of two odd
    // primes is odd.
    let exponent_is_one = exponent == [1];
    if exponent.last().is_none_or(|byte| byte & 1 == 0) || exponent_is_one {
        return Err(KeyError::Malformed {
            reason: "the RSA exponent is not an odd number above 1",
        });
    }
    let Some(&top_byte) = modulus.first() else {
        return Err(KeyError::Malformed {
            reason: "the RSA modulus is zero",
        });
    };
    if modulus.last().is_some_and(|byte| byte & 1 == 0) {
        return Err(KeyError::Malformed {
            reason: "the RSA modulus is even",
        });
    }

    let top_bits = 8 - top_byte.leading_zeros();
    Ok((modulus.len() as u32 - 1) * 8 + top_bits)
}

/// Reads `string curve, string Q` and returns the curve size in bits. Q must
/// be an uncompressed point: `0x04 || X || Y`, each coordinate as many bytes
/// as `curve_bits` needs (SEC 1 section 2.3.3).
///
/// NOTE: the point is not checked to lie on the curve; that needs field
/// arithmetic that this module does not have.
fn parse_ecdsa_fields(
    reader: &mut WireReader<'_>,
    curve: &'static str,
    curve_bits: u32,
) -> Result<u32, KeyError> {
    let curve_name = reader.read_string("the ECDSA curve name is cut off")?;
    if curve_name != curve.as_bytes() {
        return Err(KeyError::Malformed {
            reason: "the ECDSA curve name does not match the key type",
        });
    }

    let point = reader.read_string("the ECDSA point is cut off")?;
    if point.first() != Some(&0x04) {
        return Err(KeyError::Malformed {
            reason: "the ECDSA point is not in uncompressed form",
        });
    }
    let coordinate_bytes = curve_bits.div_ceil(8) as usize;
    if point.len() != 1 + 2 * coordinate_bytes {
        return Err(KeyError::Malformed {
            reason: "the ECDSA point has the wrong length for its curve",
        });
    }

    Ok(curve_bits)
}

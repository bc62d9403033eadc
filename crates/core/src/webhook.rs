//! Webhook signatures, endpoint secrets and the delivery retry schedule.
//!
//! Every delivery carries the header `WorkOS-Signature: t=<ms>, v1=<hex>`, where
//! `<ms>` is the send time in Unix milliseconds and `<hex>` is the lowercase hex
//! HMAC-SHA256 of `<ms>.<body>`, keyed by the UTF-8 bytes of the endpoint
//! secret. The WorkOS Python SDK accepts only exactly this form: a comma and one
//! space between the parts, `t` first, milliseconds, lowercase hex. It also
//! rejects timestamps more than 180 seconds away from its clock in either
//! direction, so the header is computed when each attempt is sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the HTTP header that carries the signature.
pub const SIGNATURE_HEADER: &str = "WorkOS-Signature";

/// How far, in milliseconds, a receiver lets the signature timestamp differ
/// from its clock; the WorkOS SDKs default to 180 seconds.
pub const DEFAULT_TOLERANCE_MS: i64 = 180_000;

type HmacSha256 = Hmac<Sha256>;

fn keyed_mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Builds the `WorkOS-Signature` header value for one delivery attempt:
/// `t=<timestamp_ms>, v1=<lowercase hex HMAC-SHA256 of "<timestamp_ms>.<body>">`.
pub fn signature_header(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let timestamp = timestamp_ms.to_string();
    let digest = keyed_mac(secret, &timestamp, body).finalize().into_bytes();
    format!("t={timestamp}, v1={}", hex::encode(digest))
}

/// Why a signature header was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("invalid signature header: {reason}; expected `t=<unix ms>, v1=<lowercase hex>`")]
    Malformed { reason: &'static str },

    #[error("signature timestamp is {age_ms} ms old, over the {tolerance_ms} ms tolerance")]
    TooOld { age_ms: i64, tolerance_ms: i64 },

    #[error(
        "signature timestamp is {ahead_ms} ms in the future, over the {tolerance_ms} ms tolerance"
    )]
    InFuture { ahead_ms: i64, tolerance_ms: i64 },

    #[error("signature does not match the body and secret")]
    Mismatch,
}

/// Verifies a `WorkOS-Signature` header value as strictly as the WorkOS Python
/// SDK does: the exact `t=<ms>, v1=<hex>` form, lowercase hex, and a timestamp
/// within `tolerance_ms` of `now_ms` in either direction. The digest is
/// compared in constant time.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<(), SignatureError> {
    let Some((timestamp_part, digest_part)) = header.split_once(", ") else {
        return Err(SignatureError::Malformed {
            reason: "the parts are not separated by a comma and a space",
        });
    };
    let Some(timestamp) = timestamp_part.strip_prefix("t=") else {
        return Err(SignatureError::Malformed {
            reason: "the first part does not start with t=",
        });
    };
    let Some(digest_hex) = digest_part.strip_prefix("v1=") else {
        return Err(SignatureError::Malformed {
            reason: "the second part does not start with v1=",
        });
    };

    if timestamp.is_empty() || !timestamp.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(SignatureError::Malformed {
            reason: "the timestamp is not a whole number",
        });
    }
    let Ok(timestamp_ms) = timestamp.parse::<i64>() else {
        return Err(SignatureError::Malformed {
            reason: "the timestamp is out of range",
        });
    };
    let is_lower_hex = digest_hex
        .bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if digest_hex.len() != 64 || !is_lower_hex {
        return Err(SignatureError::Malformed {
            reason: "the digest is not 64 lowercase hex digits",
        });
    }

    let age_ms = now_ms.saturating_sub(timestamp_ms);
    if age_ms > tolerance_ms {
        return Err(SignatureError::TooOld {
            age_ms,
            tolerance_ms,
        });
    }
    if -age_ms > tolerance_ms {
        return Err(SignatureError::InFuture {
            ahead_ms: -age_ms,
            tolerance_ms,
        });
    }

    let digest = hex::decode(digest_hex).map_err(|_| SignatureError::Malformed {
        reason: "the digest is not 64 lowercase hex digits",
    })?;
    keyed_mac(secret, timestamp, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

/// Encodes 24 random bytes as an endpoint secret: 32 characters of unpadded
/// URL-safe base64. The caller supplies the bytes from a cryptographic RNG,
/// because this crate has none.
pub fn secret_from_bytes(bytes: &[u8; 24]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The wait before the first retry.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The longest single wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(6 * 60 * 60);

/// The total of all waits: the last attempt is sent this long after the first.
pub const RETRY_WINDOW: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// Returns how long to wait after failed attempt number `attempt` (1 is the
/// first send) before the next one, or `None` when delivery should stop.
/// `attempt` 0 means nothing was sent yet and returns a zero wait.
///
/// Schedule: the waits double from 30 s (30 s, 1 min, 2 min, ... 4 h 16 min)
/// for attempts 1 to 10, then stay at the 6 h cap for attempts 11 to 20; the
/// wait after attempt 21 is cut to 3 h 28 min 30 s so that the waits add up to
/// exactly 72 h. So 22 attempts in all, the last one 3 days after the first.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    if attempt == 0 {
        return Some(Duration::ZERO);
    }

    let mut elapsed = Duration::ZERO;
    let mut wait = FIRST_RETRY_DELAY;
    for _ in 1..attempt {
        elapsed += wait;
        if elapsed >= RETRY_WINDOW {
            return None;
        }
        wait = (wait * 2).min(MAX_RETRY_DELAY);
    }

    let remaining = RETRY_WINDOW - elapsed;
    Some(wait.min(remaining))
}

/// The kind of webhook target an address is. The API checks registered
/// URLs with it, and senders check each resolved address before connecting.
#[derive(Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// Loopback or a private range, allowed only when the config allows private targets.
    Private(&'static str),
    /// Never a webhook target.
    Forbidden(&'static str),
}

/// Classifies an IP address; IPv4 inside IPv6 (`::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`) counts as the IPv4 address it carries.
pub fn classify_address(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, _, _] = ip.octets();
    // Alibaba Cloud's metadata service sits inside the shared address space.
    if ip == Ipv4Addr::new(100, 100, 100, 200) {
        AddressClass::Forbidden("cloud metadata")
    } else if a == 169 && b == 254 {
        AddressClass::Forbidden("link-local")
    } else if a == 0 {
        AddressClass::Forbidden("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        AddressClass::Forbidden("multicast, broadcast or reserved")
    } else if a == 127 {
        AddressClass::Private("loopback")
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        AddressClass::Private("private")
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Private("shared (carrier-grade NAT)")
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    // AWS's IPv6 metadata service.
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Forbidden("cloud metadata")
    } else if ip.is_unspecified() {
        AddressClass::Forbidden("unspecified")
    } else if segments[0] & 0xffc0 == 0xfe80 {
        AddressClass::Forbidden("link-local")
    } else if ip.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if ip.is_loopback() {
        AddressClass::Private("loopback")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private("unique local (private)")
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_fixture_2026";
    const TIMESTAMP_MS: i64 = 1_767_225_600_000;
    const BODY: &str =
        r#"{"object":"event","id":"event_01","event":"dsync.user.created","data":{"name":"Zoë"}}"#;
    /// Computed independently with Python's `hmac.new(SECRET, b"<t>.<body>", sha256).hexdigest()`;
    /// the WorkOS Python SDK 10.8.0 `verify_header` accepts this header.
    const EXPECTED_HEX: &str = "959cfefd4659d693bd2dc98b1aed48aaf7dcf9cff2094517d9a713d6b4335b40";

    fn header() -> String {
        signature_header(SECRET, TIMESTAMP_MS, BODY.as_bytes())
    }

    #[test]
    fn signature_header_matches_python_hmac() {
        assert_eq!(header(), format!("t={TIMESTAMP_MS}, v1={EXPECTED_HEX}"));
    }

    #[test]
    fn verify_accepts_own_header() {
        let result = verify_signature(
            &header(),
            BODY.as_bytes(),
            SECRET,
            TIMESTAMP_MS + 1_000,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn verify_rejects_changed_body() {
        let changed = BODY.replace("Zoë", "Zoe");

        let result = verify_signature(
            &header(),
            changed.as_bytes(),
            SECRET,
            TIMESTAMP_MS,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(result, Err(SignatureError::Mismatch));
    }

    #[test]
    fn verify_rejects_other_secret() {
        let result = verify_signature(
            &header(),
            BODY.as_bytes(),
            "whsec_other",
            TIMESTAMP_MS,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(result, Err(SignatureError::Mismatch));
    }

    #[test]
    fn verify_rejects_old_timestamp() {
        let now_ms = TIMESTAMP_MS + 4 * 60 * 1000;

        let result = verify_signature(
            &header(),
            BODY.as_bytes(),
            SECRET,
            now_ms,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(
            result,
            Err(SignatureError::TooOld {
                age_ms: 240_000,
                tolerance_ms: DEFAULT_TOLERANCE_MS
            })
        );
    }

    #[test]
    fn verify_accepts_timestamp_at_tolerance() {
        let now_ms = TIMESTAMP_MS + DEFAULT_TOLERANCE_MS;

        let result = verify_signature(
            &header(),
            BODY.as_bytes(),
            SECRET,
            now_ms,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn verify_rejects_future_timestamp() {
        let now_ms = TIMESTAMP_MS - 10 * 60 * 1000;

        let result = verify_signature(
            &header(),
            BODY.as_bytes(),
            SECRET,
            now_ms,
            DEFAULT_TOLERANCE_MS,
        );

        assert_eq!(
            result,
            Err(SignatureError::InFuture {
                ahead_ms: 600_000,
                tolerance_ms: DEFAULT_TOLERANCE_MS
            })
        );
    }

    #[test]
    fn verify_rejects_variants_the_python_sdk_rejects() {
        let seconds = TIMESTAMP_MS / 1000;
        let variants = [
            format!("t={TIMESTAMP_MS},v1={EXPECTED_HEX}"),
            format!("t={TIMESTAMP_MS}, v1={}", EXPECTED_HEX.to_uppercase()),
            format!("v1={EXPECTED_HEX}, t={TIMESTAMP_MS}"),
            format!("t={TIMESTAMP_MS}, v1={EXPECTED_HEX}, v1={EXPECTED_HEX}"),
            format!("t={TIMESTAMP_MS}, v1={}", &EXPECTED_HEX[..62]),
            format!("t=-{TIMESTAMP_MS}, v1={EXPECTED_HEX}"),
            format!("t=, v1={EXPECTED_HEX}"),
            String::new(),
        ];

        for variant in variants {
            let result = verify_signature(
                &variant,
                BODY.as_bytes(),
                SECRET,
                TIMESTAMP_MS,
                DEFAULT_TOLERANCE_MS,
            );

            assert!(
                matches!(result, Err(SignatureError::Malformed { .. })),
                "{variant:?}: {result:?}"
            );
        }

        // A timestamp in seconds is well formed but decades old in milliseconds.
        let in_seconds = signature_header(SECRET, seconds, BODY.as_bytes());
        let result = verify_signature(
            &in_seconds,
            BODY.as_bytes(),
            SECRET,
            TIMESTAMP_MS,
            DEFAULT_TOLERANCE_MS,
        );
        assert!(
            matches!(result, Err(SignatureError::TooOld { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn secret_is_url_safe_base64_of_bytes() {
        let bytes: [u8; 24] = std::array::from_fn(|index| index as u8);

        assert_eq!(
            secret_from_bytes(&bytes),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
        );
    }

    #[test]
    fn secret_has_no_padding_or_plus() {
        let secret = secret_from_bytes(&[0xfb; 24]);

        assert_eq!(secret.len(), 32);
        assert!(
            secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
            "{secret}"
        );
    }

    fn all_waits() -> Vec<Duration> {
        (1..).map_while(retry_delay).collect()
    }

    #[test]
    fn retry_waits_sum_to_three_days() {
        let total: Duration = all_waits().iter().sum();

        assert_eq!(total, RETRY_WINDOW);
    }

    #[test]
    fn retry_schedule_has_22_attempts() {
        assert_eq!(all_waits().len(), 21);
        assert_eq!(retry_delay(22), None);
        assert_eq!(retry_delay(u32::MAX), None);
    }

    #[test]
    fn retry_waits_double_from_30_seconds() {
        let waits = all_waits();

        assert_eq!(waits[0], Duration::from_secs(30));
        assert_eq!(waits[1], Duration::from_secs(60));
        assert_eq!(waits[9], Duration::from_secs(15_360));
    }

    #[test]
    fn retry_waits_are_capped_at_6_hours() {
        let waits = all_waits();

        assert!(waits.iter().all(|wait| *wait <= MAX_RETRY_DELAY));
        assert_eq!(waits[10], MAX_RETRY_DELAY);
        assert_eq!(waits[19], MAX_RETRY_DELAY);
    }

    #[test]
    fn last_retry_wait_is_trimmed() {
        assert_eq!(
            retry_delay(21),
            Some(Duration::from_secs(3 * 3600 + 28 * 60 + 30))
        );
    }

    #[test]
    fn retry_before_first_attempt_is_immediate() {
        assert_eq!(retry_delay(0), Some(Duration::ZERO));
    }
}

//! The Lambda handlers, as plain async functions over JSON so that tests call
//! them in-process with recorded event shapes. The `functions/*` binaries
//! only wire them to the Lambda runtime.
//!
//! These handlers are the AWS service itself, so they log with `tracing`
//! (JSON on Lambda): ids, counts and outcomes, never a key or an HR value.

pub mod api;
pub mod ingest;
pub mod publish;
pub mod register_key;

/// Decodes an S3 object key as event notifications carry it: `+` is a
/// space and `%XX` an escaped byte.
pub fn decode_s3_key(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            b'%' => {
                let hex = std::str::from_utf8(&bytes[index + 1..(index + 3).min(bytes.len())]).ok();
                match hex
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    None => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode_s3_key;

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode_s3_key("users+2026.csv"), "users 2026.csv");
        assert_eq!(decode_s3_key("Users%2B%C3%A9t%C3%A9.csv"), "Users+été.csv");
        assert_eq!(
            decode_s3_key("results%2Freport.json"),
            "results/report.json"
        );
        assert_eq!(decode_s3_key("bad%zz%4"), "bad%zz%4");
    }
}

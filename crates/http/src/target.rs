//! The check of webhook endpoint URLs before they are stored.
//!
//! A webhook URL makes the server send requests to an address a client chose,
//! so an unchecked URL lets any API key holder reach the server's own network
//! (SSRF), above all the cloud metadata service. Link-local, unspecified,
//! multicast and metadata targets are always refused; loopback and private
//! ranges only when [`crate::ApiConfig::allow_private_webhook_urls`] is off.
//!
//! This checks the URL as written. The sender checks the addresses the host
//! resolves to again at send time, because DNS answers can change.

use std::net::IpAddr;

use dsync_core::webhook::{classify_address, AddressClass};

/// Host names of cloud metadata services, rejected whatever the config allows.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The reason a URL was rejected: the 422 `code` and a message with the fix.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: String) -> Refusal {
    Refusal { code, message }
}

/// Checks a webhook endpoint URL.
pub fn check_endpoint_url(text: &str, allow_private: bool) -> Result<(), Refusal> {
    let url = match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            return Err(refuse(
                "invalid",
                format!("`{text}` is not an absolute http or https URL"),
            ))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "userinfo_not_allowed",
            "the URL must not contain a user name or password; authenticate deliveries with the signing secret".to_owned(),
        ));
    }
    let private_hint = "this server only accepts public addresses for webhooks";
    match url.host() {
        None => Err(refuse(
            "invalid",
            format!("`{text}` has no host; give an absolute http or https URL"),
        )),
        Some(url::Host::Domain(domain)) => {
            let name = domain.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(refuse(
                    "forbidden_host",
                    format!(
                        "`{name}` is a cloud metadata service host and cannot receive webhooks"
                    ),
                ));
            }
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err(refuse(
                    "private_address",
                    format!("`{name}` is this machine; {private_hint}"),
                ));
            }
            Ok(())
        }
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), allow_private, private_hint),
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), allow_private, private_hint),
    }
}

fn check_ip(ip: IpAddr, allow_private: bool, private_hint: &str) -> Result<(), Refusal> {
    match classify_address(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Private(_) if allow_private => Ok(()),
        AddressClass::Private(kind) => Err(refuse(
            "private_address",
            format!("{ip} is a {kind} address; {private_hint}"),
        )),
        AddressClass::Forbidden(kind) => Err(refuse(
            "forbidden_address",
            format!("{ip} is a {kind} address, which can never receive webhooks"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(url: &str, allow_private: bool) -> Option<&'static str> {
        check_endpoint_url(url, allow_private).err().map(|r| r.code)
    }

    #[test]
    fn link_local_and_metadata_are_always_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://2852039166/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://100.100.100.200/",
        ] {
            assert_eq!(code(url, true), Some("forbidden_address"), "{url}");
        }
        assert_eq!(
            code("http://metadata.google.internal./x", true),
            Some("forbidden_host")
        );
    }

    #[test]
    fn private_ranges_follow_the_config() {
        for url in [
            "http://127.0.0.1:9000/",
            "http://localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fc00::1]/",
            "http://[fd12::1]/",
        ] {
            assert_eq!(code(url, false), Some("private_address"), "{url}");
            assert_eq!(code(url, true), None, "{url}");
        }
    }

    #[test]
    fn public_and_malformed_urls() {
        assert_eq!(code("https://hooks.example.com/dsync", false), None);
        assert_eq!(code("http://172.32.0.1/", false), None);
        assert_eq!(code("ftp://example.com/", true), Some("invalid"));
        assert_eq!(code("not a url", true), Some("invalid"));
        assert_eq!(
            code("https://user:pw@example.com/", true),
            Some("userinfo_not_allowed")
        );
    }
}

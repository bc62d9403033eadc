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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    match classify(ip) {
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

/// The kind of target an address is.
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
pub fn classify(ip: IpAddr) -> AddressClass {
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

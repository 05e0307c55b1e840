//! Webhooks the Standard Webhooks way (<https://www.standardwebhooks.com>): every call carries `webhook-id` (the
//! delivery's id, the same on every retry and replay, so receivers can deduplicate), `webhook-timestamp` (Unix
//! seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! base64-decoded part of the endpoint's `whsec_...` secret.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

/// The prefix of endpoint secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2_000;

/// Why an endpoint on a non-public address is refused.
pub const PRIVATE_TARGET: &str = "must be on a public address, not a loopback, private or link-local one";

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-id` of a delivery.
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

/// The `webhook-signature` header value for a message, or `None` when the secret is not a `whsec_` secret.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut context = hmac::Context::with_key(&key);
    context.update(message_id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Some(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, unique local), link-local (which
/// holds cloud metadata services), shared (carrier-grade NAT), IETF protocol assignments (192.0.0.0/24 but its two
/// global anycast addresses), deprecated 6to4 relays (192.88.99.0/24), unspecified, multicast, broadcast,
/// documentation or benchmarking space, nor an IPv6 form of any of these. Webhooks go only to public addresses unless
/// the operator allows otherwise, so a partner's endpoint cannot make the platform call into its own network.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv6 by the IANA special-purpose registry. Only global unicast (2000::/3) is public, which leaves out loopback,
/// unspecified, IPv4-compatible, NAT64 (64:ff9b::/96, 64:ff9b:1::/48: they reach IPv4 through a translator that
/// may sit inside), discard-only (100::/64), SRv6 (5f00::/16), unique local (fc00::/7), link-local (fe80::/10),
/// site-local (fec0::/10) and multicast (ff00::/8), and any block assigned later outside it. Within 2000::/3, the
/// IETF protocol block (2001::/23: Teredo 2001::/32, which tunnels to an IPv4 address, benchmarking, ORCHID) and
/// documentation (2001:db8::/32, 3fff::/20) are not public either, and 6to4 (2002::/16) is as public as the IPv4
/// address it embeds.
fn is_public_v6(v6: Ipv6Addr) -> bool {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let [first, second, third, ..] = v6.segments();
    let global_unicast = (first & 0xe000) == 0x2000;
    let ietf_protocols = first == 0x2001 && second < 0x0200; // 2001::/23
    let documentation = (first == 0x2001 && second == 0x0db8) || (first & 0xfff0) == 0x3ff0; // 2001:db8::/32, 3fff::/20
    if first == 0x2002 {
        let [a, b] = second.to_be_bytes();
        let [c, d] = third.to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    global_unicast && !ietf_protocols && !documentation
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || a == 0 // "this network" 0.0.0.0/8
        || (a == 100 && (64..128).contains(&b)) // shared 100.64.0.0/10
        // IETF protocol assignments 192.0.0.0/24, but for the two anycast services reachable from anywhere
        || (a == 192 && b == 0 && v4.octets()[2] == 0 && !matches!(v4.octets()[3], 9 | 10))
        || (a == 192 && b == 88 && v4.octets()[2] == 99) // 6to4 relay anycast 192.88.99.0/24, deprecated
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved 240.0.0.0/4
}

/// Where webhooks may go: public addresses, and the non-public ones the operator allows (all of them, or some
/// networks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub any_private: bool,
    pub networks: Vec<ipnet::IpNet>,
}

impl Targets {
    pub fn of(options: &crate::Options) -> Targets {
        Targets {
            any_private: options.webhook_private_targets,
            networks: options.webhook_allowed_networks.clone(),
        }
    }

    /// Whether a webhook may call `ip` (an IPv4 address written as IPv6, `::ffff:a.b.c.d`, is taken as IPv4).
    pub fn allow(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.any_private || is_public(ip) || self.networks.iter().any(|network| network.contains(&ip))
    }
}

/// The address an endpoint URL names literally, if it names one (`[::1]` as well as `127.0.0.1`).
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Parses an endpoint URL: absolute http or https, with a host, no credentials, bounded length; an address named
/// literally must be one `targets` allows (names are checked when called, by the webhook client's resolver).
pub fn parse_url(raw: &str, targets: &Targets) -> Result<url::Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".to_owned());
    }
    if url.port() == Some(0) {
        return Err("must not name port 0".to_owned());
    }
    if raw.chars().any(char::is_control) {
        // The URL parser drops tabs and line breaks silently: what was stored would not be what was sent.
        return Err("must not contain control characters".to_owned());
    }
    if literal_ip(&url).is_some_and(|ip| !targets.allow(ip)) {
        return Err(PRIVATE_TARGET.to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signature = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_random_and_well_formed() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(STANDARD.decode(&a[SECRET_PREFIX.len()..]).unwrap().len(), SECRET_BYTES);
    }

    const PUBLIC_ONLY: Targets = Targets {
        any_private: false,
        networks: Vec::new(),
    };
    const ANY: Targets = Targets {
        any_private: true,
        networks: Vec::new(),
    };

    #[test]
    fn only_plain_http_urls_are_endpoints() {
        for good in ["https://partner.example.com/hooks", "http://93.184.215.14:8080/x?y=1"] {
            assert!(parse_url(good, &PUBLIC_ONLY).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@example.com/",
            "mailto:a@b.c",
            "/relative",
            "https://example.com:0/",
            "https://exam\r\nple.com/hooks",
            "https://example.com/ho\toks",
        ] {
            assert!(parse_url(bad, &ANY).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_on_private_addresses_are_refused_unless_allowed() {
        for private in [
            "http://127.0.0.1:8080/x",
            "http://127.1/x",
            "http://2130706433/x",
            "http://0x7f.0.0.1/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
            "https://192.168.1.1/",
            "http://0.0.0.0/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[fec0::1]/",
            "http://[2002:7f00:1::]/",
            "http://[2001::1]/",
        ] {
            assert_eq!(
                parse_url(private, &PUBLIC_ONLY).unwrap_err(),
                PRIVATE_TARGET,
                "{private}"
            );
            assert!(parse_url(private, &ANY).is_ok(), "{private}");
        }
    }

    #[test]
    fn an_allowed_network_opens_its_addresses_and_no_others() {
        let targets = Targets {
            any_private: false,
            networks: vec!["10.20.0.0/16".parse().unwrap(), "fd12:3456::/32".parse().unwrap()],
        };
        let allowed = [
            "10.20.0.1",
            "10.20.255.254",
            "::ffff:10.20.3.4",
            "fd12:3456::1",
            "8.8.8.8",
        ];
        let refused = [
            "10.21.0.1",
            "10.19.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "fd12:3457::1",
            "::1",
        ];
        for ip in allowed {
            assert!(targets.allow(ip.parse().unwrap()), "{ip}");
        }
        for ip in refused {
            assert!(!targets.allow(ip.parse().unwrap()), "{ip}");
        }
        assert!(parse_url("http://10.20.7.7:8080/hooks", &targets).is_ok());
        assert_eq!(
            parse_url("http://10.21.7.7/hooks", &targets).unwrap_err(),
            PRIVATE_TARGET
        );
    }

    #[test]
    fn public_means_routable_on_the_internet() {
        let public = [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "100.63.255.255",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.1.1",
            "192.88.98.1",
            "2002:808:808::1",
            "2001:200::1",
            "2a00:1450:4001:82b::200e",
        ];
        let private = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "192.0.0.1",
            "192.0.0.8",
            "192.0.0.170",
            "192.88.99.1",
            "198.18.0.1",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "fc00::1",
            "fdff::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "fec0::1",
            "feff::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff:ffff::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "ff0e::1",
            "::2",
            "4000::1",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in private {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}

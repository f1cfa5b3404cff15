//! Hosts as users write them in URLs and settings.

use std::net::IpAddr;

/// Whether `host` (a name or an IP address, IPv6 with or without its brackets, no port) is
/// this machine: `localhost`, 127.0.0.0/8 or `::1`. A secret sent there over plain `http`
/// does not cross a network, so the destinations allow it without `allow_insecure`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn this_machine_by_name_or_address() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "192.168.1.2",
            "[fe80::1]",
            "localhost.evil",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}

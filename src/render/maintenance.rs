//! The files of maintenance mode (`stack maintenance`), pure: the switch's state, the
//! page, and the snippets the proxies read beside their configuration (the allowed
//! addresses, the Retry-After header). The proxies' own configuration always holds the
//! switch (see `templates/`); these files only fill it in.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Retry-After (seconds) when `--retry-after` is not given.
pub const DEFAULT_RETRY_AFTER: u32 = 300;
/// The largest page `--page` may name.
pub const MAX_PAGE_BYTES: u64 = 1024 * 1024;
/// The switch: present while maintenance mode is on; holds the [`State`] as JSON.
pub const SWITCH_FILE: &str = "on";
/// The page the proxy answers with.
pub const PAGE_FILE: &str = "page.html";

/// The page shown when `--page` is not given.
pub const DEFAULT_PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>Down for maintenance</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}</style>
</head>
<body>
<h1>Down for maintenance</h1>
<p>We are making some changes and will be back shortly. Please try again in a few minutes.</p>
</body>
</html>
";

/// An address range that still reaches the app: `10.0.0.0/8`, `203.0.113.7` (one
/// address), `2001:db8::/32`. Checked while the arguments are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| {
            format!("`{text}` is not an IP address or range (e.g. `203.0.113.7` or `10.0.0.0/8`)")
        })?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// What `stack maintenance on` recorded: in the switch file, read by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// When it was turned on (UTC, RFC 3339).
    pub since: String,
    /// The address ranges that still reach the app.
    pub allow: Vec<String>,
    /// Seconds, the Retry-After header.
    pub retry_after: u32,
}

/// The snippets both proxies read (whichever the project runs, so a change of
/// `STACK_PROXY` finds its own): file name → contents.
pub fn proxy_files(allow: &[Cidr], retry_after: u32) -> Vec<(&'static str, String)> {
    let header = "# written by `stack maintenance on`; turned off by removing the file `on`\n";
    let caddy_allow = if allow.is_empty() {
        header.to_string()
    } else {
        let ranges: Vec<String> = allow.iter().map(Cidr::to_string).collect();
        format!("{header}not remote_ip {}\n", ranges.join(" "))
    };
    let caddy_headers = format!("{header}header Retry-After {retry_after}\n");
    let mut nginx = format!("{header}geo $stack_maintenance_allowed {{\n\tdefault 0;\n");
    for range in allow {
        nginx.push_str(&format!("\t{range} 1;\n"));
    }
    nginx.push_str(&format!(
        "}}\nmap $host $stack_maintenance_retry_after {{\n\tdefault {retry_after};\n}}\n"
    ));
    vec![
        ("allow.caddy", caddy_allow),
        ("headers.caddy", caddy_headers),
        ("maintenance.nginx", nginx),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_and_written_in_full() {
        let one: Cidr = "203.0.113.7".parse().unwrap();
        assert_eq!(one.to_string(), "203.0.113.7/32");
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        let six: Cidr = "2001:db8::/32".parse().unwrap();
        assert_eq!(six.to_string(), "2001:db8::/32");
        for bad in [
            "",
            "10.0.0.0/33",
            "example.com",
            "10.0.0.0/x",
            "1.2.3.4; deny",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_snippets_name_every_range_and_the_header() {
        let allow = ["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let files = proxy_files(&allow, 120);
        let text = |name: &str| files.iter().find(|f| f.0 == name).unwrap().1.clone();
        assert!(text("allow.caddy").contains("not remote_ip 127.0.0.1/32 10.0.0.0/8\n"));
        assert!(text("headers.caddy").contains("header Retry-After 120\n"));
        let nginx = text("maintenance.nginx");
        assert!(nginx.contains("\t127.0.0.1/32 1;\n\t10.0.0.0/8 1;\n"));
        assert!(nginx.contains("default 120;"));
        assert!(!proxy_files(&[], 300)[0].1.contains("remote_ip"));
    }
}

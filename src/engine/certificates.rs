//! The certificates the proxy holds: read from inside its container (Caddy's `/data`
//! volume, nginx's `/etc/nginx/certs`) and reduced to each host's expiry. Reading them
//! from the volume works the same on this machine and on a server (`--on ENV`), and
//! needs no connection to the public port. It never changes the proxy.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::Engine;
use crate::error::Result;

/// Where each proxy keeps one certificate per host: Caddy under its storage
/// (`certificates/<issuer>/<host>/<host>.crt`), nginx as `<host>.crt`.
const LIST: &str = "for f in /data/caddy/certificates/*/*/*.crt /etc/nginx/certs/*.crt; do \
    [ -f \"$f\" ] && { echo \"#file $f\"; cat \"$f\"; }; done; true";

impl Engine {
    /// Host → expiry of the certificate the proxy container `id` holds for it (the
    /// latest when it holds several, e.g. from two ACME servers).
    pub async fn certificate_expiry(&self, id: &str) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let command = ["sh", "-c", LIST].map(String::from);
        let (_, output) = self.exec(id, &command).await?;
        Ok(expiries(&output))
    }
}

/// Parse the listing of [`LIST`]: host (the file's name) → latest expiry.
pub fn expiries(listing: &str) -> BTreeMap<String, DateTime<Utc>> {
    let mut out: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for part in listing.split("#file ").skip(1) {
        let (path, pem) = part.split_once('\n').unwrap_or((part, ""));
        let name = path.trim().rsplit('/').next().unwrap_or_default();
        let Some(host) = name.strip_suffix(".crt") else {
            continue;
        };
        // A placeholder nginx serves before the first issuance is not a host's.
        if host.is_empty() || host.starts_with('.') {
            continue;
        }
        let Some(expiry) = first_pem(pem).and_then(|der| not_after(&der)) else {
            continue;
        };
        let entry = out.entry(host.to_string()).or_insert(expiry);
        if expiry > *entry {
            *entry = expiry;
        }
    }
    out
}

/// The DER bytes of the first certificate of a PEM text.
fn first_pem(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// One DER element: (tag, contents, the rest after it).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notAfter` of an X.509 certificate (RFC 5280 §4.1): certificate → tbsCertificate →
/// [version], serial, signature, issuer, validity → notAfter.
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, certificate, _) = element(der)?;
    let (_, tbs, _) = element(certificate)?;
    let (mut tag, mut _value, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        (tag, _value, rest) = element(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (_, _, rest) = element(rest)?; // issuer
    let (_, validity, _) = element(rest)?;
    let (_, _, after) = element(validity)?;
    let (tag, time, _) = element(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let text = text.strip_suffix('Z')?;
    let full = match tag {
        // UTCTime: two-digit years, 50–99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 if text.len() == 12 => {
            let year: u32 = text[..2].parse().ok()?;
            let century = if year >= 50 { "19" } else { "20" };
            format!("{century}{text}")
        }
        0x18 if text.len() == 14 => text.to_string(),
        _ => return None,
    };
    NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// How an expiry reads next to `now`: `2027-03-07 09:45 UTC (in 89 days)`.
pub fn describe(expiry: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let days = (expiry - now).num_days();
    let when = if expiry < now {
        "expired".to_string()
    } else {
        format!("in {days} days")
    };
    format!("{} ({when})", expiry.format("%Y-%m-%d %H:%M UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate made by `openssl req -x509 -newkey ec -days 30 -subj /CN=a.example.test`
    /// on 2026-12-07 (notAfter Jan  6 09:46:20 2027 GMT).
    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUMhRBwIyRAQ9IwhDBtA1zubCEIOMwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOYS5leGFtcGxlLnRlc3QwHhcNMjYxMjA3MDk0NjIwWhcNMjcw
MTA2MDk0NjIwWjAZMRcwFQYDVQQDDA5hLmV4YW1wbGUudGVzdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABFfH4dNNV19Rdv75do2DmhsXjd6Mqn1IMXGehZvG81t9
Wgjdlt/X0Y9/crwRy8mUVLXkp/JddsgkFQ180/MvrkKjUzBRMB0GA1UdDgQWBBQL
l1t6SC0f3VzOMDp6Jo5xJcB0uDAfBgNVHSMEGDAWgBQLl1t6SC0f3VzOMDp6Jo5x
JcB0uDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDHZ602nI8Q
QdxHNzAJ1I69OutgqD3woiZWd7WdjxM2/AIgHgF4ssWIZ2icdz9/F72s1c9qY0kS
6I5X6NZdDiOypqY=
-----END CERTIFICATE-----
";

    #[test]
    fn the_expiry_of_a_certificate_is_read() {
        let der = first_pem(PEM).unwrap();
        let expiry = not_after(&der).unwrap();
        assert_eq!(expiry.to_rfc3339(), "2027-01-06T09:46:20+00:00");
    }

    #[test]
    fn a_listing_gives_each_host_its_latest_expiry() {
        let listing = format!(
            "#file /data/caddy/certificates/acme-a/a.example.test/a.example.test.crt\n{PEM}\
             #file /etc/nginx/certs/.placeholder.crt\n{PEM}\
             #file /etc/nginx/certs/broken.crt\nnot a certificate\n"
        );
        let found = expiries(&listing);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["a.example.test"]);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[]), None);
        assert!(expiries(
            "#file x.crt\n-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
        )
        .is_empty());
    }

    #[test]
    fn an_expiry_reads_in_days() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
            .unwrap()
            .to_utc();
        let later = DateTime::parse_from_rfc3339("2027-01-06T09:46:20Z")
            .unwrap()
            .to_utc();
        assert_eq!(describe(later, now), "2027-01-06 09:46 UTC (in 30 days)");
        assert!(describe(now, later).contains("expired"));
    }
}

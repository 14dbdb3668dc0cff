//! The certificates the proxy holds: read from inside its container (Caddy's `/data`
//! volume, nginx's `/etc/nginx/certs`) and reduced to each host's expiry. Reading them
//! from the volume works the same on this machine and on a server (`--on ENV`), and
//! needs no connection to the public port. After a `start` or a deploy it waits (a
//! bounded time) for the hosts the proxy has no certificate for yet, and it writes each
//! host's expiry for the MONITORING preset's node-exporter when the proxy mounts its
//! textfile volume (Caddy; certbot writes nginx's). It never changes the proxy's state.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::Engine;
use crate::error::{Diagnostic, Result};
use crate::model::{
    acme_hosts, Desired, Mount, Routing, METRICS_TARGET, METRICS_VOLUME, PROXY_SERVICE,
};
use crate::printer::Printer;

/// A certificate closer than this to its expiry is reported (`check`, the alert, deploys).
pub const SOON_DAYS: i64 = 14;
/// How long a `start` or a deploy waits for the certificates of new hosts.
pub const WAIT: Duration = Duration::from_secs(60);

/// [`WAIT`], or `STACK_CERTIFICATE_WAIT=DURATION` from the environment of `stack`.
///
/// Test hook: a test whose ACME server is down on purpose proves the warning, not the
/// minute before it (six such tests waited 60 s each).
pub fn wait() -> Duration {
    std::env::var("STACK_CERTIFICATE_WAIT")
        .ok()
        .and_then(|t| crate::config::values::parse_duration(&t))
        .unwrap_or(WAIT)
}
/// The file node-exporter's textfile collector reads, in the proxy's [`METRICS_TARGET`].
const METRICS_FILE: &str = "stack_certificates.prom";

/// What the proxy holds for the hosts it gets certificates for from an ACME server.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Holding {
    /// Host → expiry, of every certificate the proxy holds.
    pub expiries: BTreeMap<String, DateTime<Utc>>,
    /// Hosts without a certificate, or with an expired one.
    pub missing: Vec<String>,
    /// Hosts whose certificate expires within [`SOON_DAYS`]: the old one keeps serving.
    pub due: Vec<(String, DateTime<Utc>)>,
}

/// Sort `hosts` by what `expiries` holds for them at `now`.
pub fn holding(
    hosts: &[String],
    expiries: BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Holding {
    let soon = now + chrono::Duration::days(SOON_DAYS);
    let mut out = Holding::default();
    for host in hosts {
        match expiries.get(host) {
            Some(expiry) if *expiry > soon => {}
            Some(expiry) if *expiry > now => out.due.push((host.clone(), *expiry)),
            _ => out.missing.push(host.clone()),
        }
    }
    out.expiries = expiries;
    out
}

/// node-exporter's textfile format: one gauge per host, its certificate's expiry, and
/// `stack_certificate_missing` (1 for a routed host with no valid certificate, else 0).
pub fn metrics_text(found: &Holding) -> String {
    let mut out = String::from(
        "# HELP stack_certificate_expiry_timestamp_seconds When the certificate the proxy \
         serves for a host expires.\n# TYPE stack_certificate_expiry_timestamp_seconds gauge\n",
    );
    // Host names are checked by config (letters, digits, `-`, `.`): no quoting needed.
    for (host, expiry) in &found.expiries {
        out.push_str(&format!(
            "stack_certificate_expiry_timestamp_seconds{{host=\"{host}\"}} {}\n",
            expiry.timestamp()
        ));
    }
    out.push_str(
        "# HELP stack_certificate_missing A routed host the proxy has no valid certificate for.\n\
         # TYPE stack_certificate_missing gauge\n",
    );
    let hosts: std::collections::BTreeSet<&String> =
        found.expiries.keys().chain(&found.missing).collect();
    for host in hosts {
        let missing = u8::from(found.missing.contains(host));
        out.push_str(&format!(
            "stack_certificate_missing{{host=\"{host}\"}} {missing}\n"
        ));
    }
    out
}

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

    /// The running proxy container of `desired`'s project, when it serves HTTPS.
    pub async fn proxy_container(&self, desired: &Desired) -> Result<Option<String>> {
        if desired.service(PROXY_SERVICE).is_none() {
            return Ok(None);
        }
        Ok(self
            .containers(&desired.project)
            .await?
            .into_iter()
            .find(|c| c.service == PROXY_SERVICE && c.running)
            .map(|c| c.id))
    }

    /// After a start or a deploy: wait up to `wait` for a certificate for every host of
    /// [`acme_hosts`], then say what the proxy holds (and write the metrics). Nothing
    /// when the project gets no certificate from an ACME server or its proxy is not up.
    pub async fn settle_certificates(
        &self,
        desired: &Desired,
        wait: Duration,
    ) -> Result<Option<Holding>> {
        let hosts = acme_hosts(desired);
        if hosts.is_empty() {
            return Ok(None);
        }
        let Some(id) = self.proxy_container(desired).await? else {
            return Ok(None);
        };
        let found = self.wait_for_certificates(&id, &hosts, wait).await?;
        self.write_certificate_metrics(desired, &id, &found).await?;
        Ok(Some(found))
    }

    /// Wait up to `wait` until the proxy container `id` holds a certificate for each of
    /// `hosts`; what it holds then.
    pub async fn wait_for_certificates(
        &self,
        id: &str,
        hosts: &[String],
        wait: Duration,
    ) -> Result<Holding> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let found = holding(hosts, self.certificate_expiry(id).await?, Utc::now());
            // The proxy orders in the background: a missing one may come any moment.
            if found.missing.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Write [`metrics_text`] into the proxy's textfile volume, when it mounts one (Caddy
    /// with the MONITORING preset); a rename, so node-exporter never reads half a file.
    pub async fn write_certificate_metrics(
        &self,
        desired: &Desired,
        id: &str,
        found: &Holding,
    ) -> Result<()> {
        if !writes_metrics(desired) {
            return Ok(());
        }
        let script = format!(
            "printf '%s' \"$1\" > {METRICS_TARGET}/.{METRICS_FILE}.new && \
             mv -f {METRICS_TARGET}/.{METRICS_FILE}.new {METRICS_TARGET}/{METRICS_FILE}"
        );
        let command = ["sh", "-c", &script, "sh", &metrics_text(found)].map(String::from);
        let (code, output) = self.exec(id, &command).await?;
        if code != 0 {
            return Err(crate::error::Error::outside(format!(
                "cannot write the certificate metrics in the proxy: {}",
                output.trim()
            )));
        }
        Ok(())
    }
}

impl Engine {
    /// After a rollout: wait (at most [`wait`]) for the certificates of new hosts and warn
    /// about each host without a fresh one. Never a failure: the rollout is done, and the
    /// proxy keeps serving what it has and keeps trying on its own schedule.
    pub async fn report_certificates(&self, desired: &Desired, printer: &Printer) {
        let mut settled = self.settle_certificates(desired, wait()).await;
        if matches!(&settled, Ok(Some(found)) if !found.missing.is_empty()) {
            match self.renew_forgotten_account(desired, printer).await {
                Ok(Some(found)) => settled = Ok(Some(found)),
                Ok(None) => {}
                Err(e) => settled = Err(e),
            }
        }
        match settled {
            Ok(Some(found)) => {
                let routing = desired.routing.as_ref();
                for warning in routing.map_or(Vec::new(), |r| warnings(r, &found, Utc::now())) {
                    printer.warn(&warning);
                }
            }
            Ok(None) => {}
            Err(e) => printer.warn(&Diagnostic::new(format!(
                "cannot read the proxy's certificates: {}",
                e.render().lines().next().unwrap_or_default()
            ))),
        }
    }

    /// `supervise`: rewrite the certificate metrics now and every `every`, so a renewal
    /// shows in Prometheus (when the proxy mounts the textfile volume). Runs until dropped.
    pub async fn keep_certificate_metrics(self, desired: std::sync::Arc<Desired>, every: Duration) {
        if !writes_metrics(&desired) {
            return;
        }
        loop {
            if let Ok(Some(id)) = self.proxy_container(&desired).await {
                if let Ok(expiries) = self.certificate_expiry(&id).await {
                    let found = holding(&acme_hosts(&desired), expiries, Utc::now());
                    // A failure is retried at the next round; the alert reads the last file.
                    let _ = self.write_certificate_metrics(&desired, &id, &found).await;
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// What an ACME server answers for an account it does not know (RFC 8555 §7.3.1).
const ACCOUNT_GONE: &str = "accountDoesNotExist";
/// Where Caddy keeps its ACME accounts, one folder per CA (`acme/<ca>/users/<email>`).
const CADDY_ACCOUNTS: &str = "rm -rf /data/caddy/acme/*/users";
/// What Caddy logs when it has loaded a configuration (at start and at each reload).
const RELOADED: &str = "\"load complete\"";

impl Engine {
    /// Caddy (2.6) keeps ordering with an account an ACME server forgot (a private CA or
    /// pebble after a restart: `accountDoesNotExist`) and never registers again. When a
    /// host has no certificate and Caddy's log since its last reload shows that refusal,
    /// remove its stored accounts and reload it (`--force`: the configuration is the same),
    /// so it registers anew; then wait for the certificates again. None otherwise.
    async fn renew_forgotten_account(
        &self,
        desired: &Desired,
        printer: &Printer,
    ) -> Result<Option<Holding>> {
        let caddy = desired
            .routing
            .as_ref()
            .is_some_and(|r| r.kind == crate::config::ProxyKind::Caddy);
        let Some(id) = self.proxy_container(desired).await?.filter(|_| caddy) else {
            return Ok(None);
        };
        let lines = self.tail(&id, 500).await?;
        // Only what Caddy logged since its last (re)load counts: a refusal that stack
        // already answered is followed by the reload's own lines.
        let since = lines
            .iter()
            .rposition(|l| l.contains(RELOADED))
            .map_or(0, |at| at + 1);
        if !lines[since..].iter().any(|l| l.contains(ACCOUNT_GONE)) {
            return Ok(None);
        }
        let mut commands = vec![["sh", "-c", CADDY_ACCOUNTS].map(String::from).to_vec()];
        for mut command in crate::model::reload_commands(crate::config::ProxyKind::Caddy) {
            command.push("--force".to_string());
            commands.push(command);
        }
        for command in &commands {
            let (code, output) = self.exec(&id, command).await?;
            if code != 0 {
                return Err(crate::error::Error::outside(format!(
                    "cannot renew Caddy's ACME account: {}",
                    output.trim()
                )));
            }
        }
        printer.warn(&Diagnostic::new(
            "the ACME server no longer knows the proxy's account (it answered `accountDoesNotExist`): \
             stack removed Caddy's stored account and reloaded Caddy, which registers a new one"
                .to_string(),
        ));
        self.settle_certificates(desired, wait()).await
    }
}

/// One warning for the hosts without a certificate, one per host whose certificate is
/// due: what a `start` or a deploy prints after its rollout.
pub fn warnings(routing: &Routing, found: &Holding, now: DateTime<Utc>) -> Vec<Diagnostic> {
    let ca = match &routing.acme_ca {
        Some(url) => format!("`{url}`"),
        None => "Let's Encrypt".to_string(),
    };
    let retry = match routing.certbot() {
        true => format!(
            "certbot tries again every {} s (`STACK_CERTBOT_INTERVAL`)",
            routing.certbot_interval.as_secs()
        ),
        false => "Caddy tries again with its own backoff (1 min, then longer)".to_string(),
    };
    let mut out = Vec::new();
    if !found.missing.is_empty() {
        let hosts: Vec<String> = found.missing.iter().map(|h| format!("`{h}`")).collect();
        out.push(
            Diagnostic::new(format!(
                "no certificate yet for {}: the proxy got none from the ACME server {ca} within {} s",
                hosts.join(", "),
                wait().as_secs()
            ))
            .hint(format!(
                "the rollout is done and HTTPS to these hosts fails until one arrives; {retry}. \
                 Check that their DNS points at the server and that the ACME server answers; \
                 `stack status` shows the certificate once it is there"
            )),
        );
    }
    for (host, expiry) in &found.due {
        out.push(
            Diagnostic::new(format!(
                "the certificate of `{host}` expires {} and has not been renewed: the proxy \
                 serves it until then",
                describe(*expiry, now)
            ))
            .hint(format!(
                "{retry}; check that the ACME server {ca} answers (`stack logs proxy`)"
            )),
        );
    }
    out
}

/// The proxy mounts the MONITORING preset's textfile volume: stack writes its metrics.
pub fn writes_metrics(desired: &Desired) -> bool {
    desired.service(PROXY_SERVICE).is_some_and(|proxy| {
        proxy.mounts.iter().any(
            |m| matches!(m, Mount::Volume { name, target, .. } if name == METRICS_VOLUME && target == METRICS_TARGET),
        )
    })
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn hosts_are_missing_due_or_fresh() {
        let now = at("2026-12-07T00:00:00Z");
        let hosts = ["a.test", "b.test", "c.test", "d.test"].map(String::from);
        let expiries = BTreeMap::from([
            ("a.test".to_string(), at("2027-03-01T00:00:00Z")),
            ("b.test".to_string(), at("2026-12-14T00:00:00Z")),
            ("c.test".to_string(), at("2026-12-01T00:00:00Z")),
        ]);
        let found = holding(&hosts, expiries, now);
        assert_eq!(found.missing, ["c.test", "d.test"], "expired or none");
        assert_eq!(
            found.due,
            [("b.test".to_string(), at("2026-12-14T00:00:00Z"))]
        );
        assert_eq!(found.expiries.len(), 3);
    }

    #[test]
    fn the_metrics_are_one_gauge_per_host() {
        let expiries = BTreeMap::from([("a.test".to_string(), at("2027-01-06T09:46:20Z"))]);
        let hosts = ["a.test", "b.test"].map(String::from);
        let found = holding(&hosts, expiries, at("2026-12-07T00:00:00Z"));
        let text = metrics_text(&found);
        assert!(text.contains("# TYPE stack_certificate_expiry_timestamp_seconds gauge\n"));
        assert!(text
            .contains("stack_certificate_expiry_timestamp_seconds{host=\"a.test\"} 1799228780\n"));
        assert!(
            !text.contains("expiry_timestamp_seconds{host=\"b.test\"}"),
            "{text}"
        );
        assert!(
            text.contains("stack_certificate_missing{host=\"a.test\"} 0\n"),
            "{text}"
        );
        assert!(
            text.ends_with("stack_certificate_missing{host=\"b.test\"} 1\n"),
            "{text}"
        );
        assert_eq!(metrics_text(&Holding::default()).lines().count(), 4);
    }

    fn routing(kind: crate::config::ProxyKind) -> Routing {
        Routing {
            kind,
            tls: crate::config::Tls::Auto,
            email: None,
            acme_ca: Some("https://acme.test/dir".into()),
            acme_ca_root: false,
            certbot_interval: Duration::from_secs(3600),
            services: Vec::new(),
            previews: false,
            preview_ttl: None,
            stream_close_delay: None,
        }
    }

    #[test]
    fn the_warnings_name_the_hosts_and_what_retries() {
        let now = at("2026-12-07T00:00:00Z");
        let found = Holding {
            missing: vec!["c.test".into(), "d.test".into()],
            due: vec![("b.test".into(), at("2026-12-13T12:00:00Z"))],
            ..Holding::default()
        };
        let caddy = warnings(&routing(crate::config::ProxyKind::Caddy), &found, now);
        assert_eq!(caddy.len(), 2);
        assert_eq!(
            caddy[0].message,
            "no certificate yet for `c.test`, `d.test`: the proxy got none from the ACME \
             server `https://acme.test/dir` within 60 s"
        );
        assert!(caddy[0]
            .hint
            .as_ref()
            .unwrap()
            .contains("Caddy tries again"));
        assert_eq!(
            caddy[1].message,
            "the certificate of `b.test` expires 2026-12-13 12:00 UTC (in 6 days) and has not \
             been renewed: the proxy serves it until then"
        );
        let nginx = warnings(&routing(crate::config::ProxyKind::Nginx), &found, now);
        assert!(nginx[0].hint.as_ref().unwrap().contains("every 3600 s"));
        assert!(warnings(
            &routing(crate::config::ProxyKind::Caddy),
            &Holding::default(),
            now
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

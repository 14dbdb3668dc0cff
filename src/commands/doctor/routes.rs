//! The routed hosts' checks: DNS points at the server, and the certificate served.

use super::*;

/// The routed hosts, in order, once each.
pub(super) fn routed_hosts(desired: &Desired) -> Vec<String> {
    let mut seen = BTreeSet::new();
    desired
        .services
        .iter()
        .flat_map(|s| s.routes.iter())
        .filter(|r| seen.insert(r.host.clone()))
        .map(|r| r.host.clone())
        .collect()
}

pub(super) fn resolve(host: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (host, 443)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    ips.sort();
    ips.dedup();
    ips
}

pub(super) fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Per routed host: DNS points at the server, and what its certificate says.
pub(super) fn routes(config: &Config, server: &Server, desired: &Desired) -> Vec<Check> {
    let hosts = routed_hosts(desired);
    if hosts.is_empty() {
        return Vec::new();
    }
    let server_ips = resolve(&server.host);
    let mut checks = Vec::new();
    for host in hosts {
        let name = format!("dns {host}");
        let ips = resolve(&host);
        let check = if ips.is_empty() {
            Check::failure(
                name,
                format!("`{host}` does not resolve"),
                format!(
                    "create an A/AAAA record for `{host}` pointing at {}",
                    list(&server_ips)
                ),
            )
        } else if ips.iter().any(|ip| server_ips.contains(ip)) {
            Check::ok(name, format!("`{host}` → {}, the server", list(&ips)))
        } else {
            Check::failure(
                name,
                format!(
                    "`{host}` → {}, not the server ({})",
                    list(&ips),
                    list(&server_ips)
                ),
                format!(
                    "point the A/AAAA record of `{host}` at {}",
                    list(&server_ips)
                ),
            )
        };
        let resolved = check.status == Status::Ok;
        checks.push(check);
        if resolved && config.tls != Tls::Off {
            checks.push(certificate(&host));
        }
    }
    checks
}

/// What the certificate served for `host` on port 443 says (`openssl s_client`).
pub(super) fn certificate(host: &str) -> Check {
    let name = format!("certificate {host}");
    let script = "timeout 15 openssl s_client -connect \"$1:443\" -servername \"$1\" </dev/null 2>/dev/null \
                  | openssl x509 -noout -subject -issuer -enddate -checkend \"$2\"";
    let output = Command::new("sh")
        .args(["-c", script, "sh", host, &CERT_SOON.to_string()])
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else {
        return Check::warning(
            name,
            "cannot run `sh` and `openssl`",
            "install openssl to check certificates",
        );
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches(['=', ' ']).trim().to_string())
    };
    let (Some(issuer), Some(until)) = (field("issuer"), field("notAfter")) else {
        return Check::warning(
            name,
            format!("no certificate is served on `{host}:443`"),
            format!("deploy, then check that the proxy answers on 443 (`openssl s_client -connect {host}:443`)"),
        );
    };
    let detail = format!("issued by {issuer}, valid until {until}");
    if output.status.success() {
        Check::ok(name, detail)
    } else {
        Check::warning(
            name,
            format!("{detail}: expires within 14 days"),
            "check the proxy's ACME renewal (its logs), then redeploy",
        )
    }
}

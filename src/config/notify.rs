//! `STACK_NOTIFY`: where stack tells about deploys, rollbacks, forced unlocks, failed
//! backups and jobs, and containers supervise restarted. Pure: the URLs are checked and
//! their format decided here; the top-level `notify` module sends.
//!
//! The URLs carry tokens (a Slack or Discord webhook's path, an ntfy topic), so the value
//! must come from a secret: the secrets file, `STACK_SECRETS_COMMAND`, or an
//! interpolation of a secret. A value written in a committed file is refused.

use super::lookup::{Errors, Keys};
use crate::error::Diagnostic;
use crate::project::SourceKind;

/// The key.
pub const KEY: &str = "STACK_NOTIFY";

/// How an endpoint wants its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// Any webhook: a JSON object with the event's fields.
    Json,
    /// A Slack incoming webhook: `{"text": …}`.
    Slack,
    /// A Discord webhook: `{"content": …}`.
    Discord,
    /// An ntfy topic: the message as the body, title, priority and tags as headers.
    Ntfy,
}

/// One endpoint of `STACK_NOTIFY`. Its URL is a secret: `Debug` and [`Self::redacted`]
/// show the scheme and host only.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub format: NotifyFormat,
    /// The URL posted to (without a `slack+`-style prefix).
    pub url: String,
}

impl std::fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self.format, self.redacted())
    }
}

impl NotifyTarget {
    /// `scheme://host[:port]`: what a message may show of the URL.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        format!("{scheme}://{host}")
    }

    /// The item as written back for the server: the format as an explicit prefix.
    pub fn item(&self) -> String {
        let prefix = match self.format {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
            NotifyFormat::Discord => "discord",
            NotifyFormat::Ntfy => "ntfy",
        };
        format!("{prefix}+{}", self.url)
    }

    /// Parse one item: `[json+|slack+|discord+|ntfy+]http(s)://host/…`. Without a
    /// prefix the host decides: `hooks.slack.com`, `discord.com`/`discordapp.com`,
    /// `ntfy.sh`; any other is a JSON webhook.
    pub fn parse(item: &str) -> Result<NotifyTarget, String> {
        let prefixes = [
            ("json+", NotifyFormat::Json),
            ("slack+", NotifyFormat::Slack),
            ("discord+", NotifyFormat::Discord),
            ("ntfy+", NotifyFormat::Ntfy),
        ];
        let (explicit, url) = prefixes
            .iter()
            .find_map(|(prefix, format)| Some((Some(*format), item.strip_prefix(prefix)?)))
            .unwrap_or((None, item));
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("is not a URL (`https://host/path`)".into());
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "has the scheme `{scheme}`; use `http` or `https`, with an optional `json+`, `slack+`, `discord+` or `ntfy+` prefix for the format"
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
            return Err("has no host".into());
        }
        let detected = match name.to_ascii_lowercase().as_str() {
            "hooks.slack.com" => NotifyFormat::Slack,
            "discord.com" | "discordapp.com" => NotifyFormat::Discord,
            "ntfy.sh" => NotifyFormat::Ntfy,
            _ => NotifyFormat::Json,
        };
        Ok(NotifyTarget {
            format: explicit.unwrap_or(detected),
            url: url.to_string(),
        })
    }
}

/// Read `STACK_NOTIFY` (a comma-separated list): only from a secret.
pub(super) fn read(keys: &Keys, errors: &mut Errors) -> Vec<NotifyTarget> {
    let Some(value) = keys.peek(KEY) else {
        return Vec::new();
    };
    let Some(setting) = keys.resolved.settings.get(KEY) else {
        return Vec::new();
    };
    // The line is never shown: it holds the URLs.
    let span = crate::error::Span {
        line_text: format!("{KEY}=********").into(),
        col: 1,
        len: KEY.len() as u32,
        ..setting.span.clone()
    };
    let from_secret = setting.kind == SourceKind::Secrets
        || setting.refs.iter().any(|r| keys.secrets.contains(r));
    if !from_secret && !value.text.trim().is_empty() {
        errors.push(
            Diagnostic::new(format!(
                "`{KEY}` is set in `{}`, a file that is not secret, but its URLs carry tokens",
                setting.span.source
            ))
            .at(&span)
            .hint(format!(
                "move it to `environments/<env>/secrets.env` (or `STACK_SECRETS_COMMAND`), or write `{KEY}=${{NOTIFY_URLS}}` with `NOTIFY_URLS` in the secrets file"
            )),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (index, item) in value.list().iter().enumerate() {
        match NotifyTarget::parse(item) {
            Ok(target) => out.push(target),
            // The item is not quoted: it may hold a token.
            Err(problem) => errors.push(
                Diagnostic::new(format!("item {} of `{KEY}` {problem}", index + 1))
                    .at(&span)
                    .hint("each item is `https://host/path`, optionally prefixed `slack+`, `discord+`, `ntfy+` or `json+`; items are separated by commas"),
            ),
        }
    }
    out
}

/// The services that send their own notifications (the `BACKUP` preset's `backup`, whose
/// script reports a failed step) get the endpoints as the secret variable [`KEY`],
/// each item with its format as an explicit prefix.
pub(super) fn attach(config: &mut super::Config) {
    if config.notify.is_empty() {
        return;
    }
    let items: Vec<String> = config.notify.iter().map(NotifyTarget::item).collect();
    let value = items.join(",");
    for service in &mut config.services {
        if service.preset == Some("BACKUP") && service.name == "backup" {
            service.set_env(KEY.to_string(), value.clone(), true);
            // What the script's messages name.
            service.set_env(format!("{KEY}_PROJECT"), config.project.clone(), false);
            service.set_env(format!("{KEY}_ENVIRONMENT"), config.env.clone(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_or_the_prefix_decides_the_format() {
        let cases = [
            (
                "https://hooks.slack.com/services/T/B/x",
                NotifyFormat::Slack,
            ),
            (
                "https://discord.com/api/webhooks/1/x",
                NotifyFormat::Discord,
            ),
            (
                "https://discordapp.com/api/webhooks/1/x",
                NotifyFormat::Discord,
            ),
            ("https://ntfy.sh/topic", NotifyFormat::Ntfy),
            ("https://example.com/hook", NotifyFormat::Json),
            ("ntfy+http://127.0.0.1:8080/alerts", NotifyFormat::Ntfy),
            ("slack+http://127.0.0.1:9/x", NotifyFormat::Slack),
            ("json+https://hooks.slack.com/x", NotifyFormat::Json),
        ];
        for (item, format) in cases {
            assert_eq!(NotifyTarget::parse(item).unwrap().format, format, "{item}");
        }
        let target = NotifyTarget::parse("ntfy+http://u:p@127.0.0.1:8080/t").unwrap();
        assert_eq!(target.url, "http://u:p@127.0.0.1:8080/t");
    }

    #[test]
    fn the_redacted_url_is_scheme_and_host() {
        let target =
            NotifyTarget::parse("https://user:tok@hooks.slack.com/services/T/B/secret?x=1")
                .unwrap();
        assert_eq!(target.redacted(), "https://hooks.slack.com");
        assert!(!format!("{target:?}").contains("secret"));
    }

    #[test]
    fn bad_items_are_refused() {
        for item in [
            "hooks.slack.com/x",
            "ftp://host/x",
            "https:///path",
            "mqtt+https://h/x",
        ] {
            assert!(NotifyTarget::parse(item).is_err(), "{item}");
        }
    }
}

//! Typed readings of one resolved value: booleans, durations, numbers, lists, names.
//! Each returns a diagnostic that points at the key that set the value.

use std::time::Duration;

use crate::error::{Diagnostic, Span};

/// A resolved value and where it was set.
#[derive(Debug, Clone)]
pub struct Value<'a> {
    pub key: &'a str,
    pub text: &'a str,
    pub span: Option<&'a Span>,
    /// The value is, or interpolates, a secret: a diagnostic never quotes it.
    pub secret: bool,
}

/// What a diagnostic says instead of a value built from a secret.
pub const HIDDEN: &str = "(value hidden: it comes from a secret)";

impl<'a> Value<'a> {
    /// The value as a diagnostic quotes it: `` `text` ``, or [`HIDDEN`] for a secret.
    pub fn quoted(&self) -> String {
        quote(self.text, self.secret)
    }

    /// Part of the value (an item of a list) as a diagnostic quotes it.
    pub fn show(&self, text: &str) -> String {
        quote(text, self.secret)
    }

    fn error(&self, message: String, hint: &str) -> Diagnostic {
        Diagnostic::new(message)
            .with_span(self.span.cloned())
            .hint(hint.to_string())
    }

    pub fn boolean(&self) -> Result<bool, Diagnostic> {
        match self.text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(self.error(
                format!("`{}` must be a boolean, not {}", self.key, self.quoted()),
                "use true/false, yes/no, on/off or 1/0",
            )),
        }
    }

    pub fn duration(&self) -> Result<Duration, Diagnostic> {
        parse_duration(self.text.trim()).ok_or_else(|| {
            self.error(
                format!("`{}` must be a duration, not {}", self.key, self.quoted()),
                "write e.g. `500ms`, `30s`, `2m`, `1h`, or a number of seconds",
            )
        })
    }

    pub fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
        &self,
        min: T,
        max: T,
    ) -> Result<T, Diagnostic> {
        match self.text.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(self.error(
                format!(
                    "`{}` must be a whole number from {min} to {max}, not {}",
                    self.key,
                    self.quoted()
                ),
                "write digits only, e.g. `512`",
            )),
        }
    }

    pub fn port(&self) -> Result<u16, Diagnostic> {
        self.number::<u16>(1, 65535)
    }

    pub fn cpus(&self) -> Result<f64, Diagnostic> {
        match self.text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 && n <= 1024.0 => Ok(n),
            _ => Err(self.error(
                format!(
                    "`{}` must be a positive number of CPUs, not {}",
                    self.key,
                    self.quoted()
                ),
                "write e.g. `0.5` or `2`",
            )),
        }
    }

    /// Comma-separated, blanks around items ignored, empty items dropped.
    pub fn list(&self) -> Vec<String> {
        split_list(self.text)
    }

    /// The items of `ENV`, `LABELS` or `BUILD_ARGS` ([`split_escaped`]).
    pub fn escaped_list(&self) -> Result<Vec<String>, Diagnostic> {
        split_escaped(self.text).ok_or_else(|| {
            self.error(
                format!("`{}` ends with a lone backslash", self.key),
                "a backslash escapes what follows it: write `\\,` for a comma inside an item and `\\\\` for a backslash",
            )
        })
    }

    /// A name matching `[a-z0-9][a-z0-9<extra>]*`, at most 63 characters.
    pub fn name(&self, what: &str, extra: &str) -> Result<String, Diagnostic> {
        let text = self.text.trim();
        if !check_name(text, extra) {
            return Err(
            self.error(
                format!("invalid {what} {}", quote(text, self.secret)),
                &format!(
                    "a {what} starts with a lower-case letter or digit and has only lower-case letters, digits{}",
                    describe_extra(extra)
                ),
            ));
        }
        Ok(text.to_string())
    }

    /// One of `choices`, any case.
    pub fn choice(&self, choices: &[&'static str]) -> Result<&'static str, Diagnostic> {
        let text = self.text.trim().to_ascii_lowercase();
        choices
            .iter()
            .find(|c| **c == text)
            .copied()
            .ok_or_else(|| {
                let mut hint = format!("use one of: {}", choices.join(", "));
                let near = crate::error::nearest(&text, choices.iter().copied());
                if let Some(near) = near.filter(|_| !self.secret) {
                    hint = format!("did you mean `{near}`? ({hint})");
                }
                self.error(
                    format!(
                        "`{}` must be one of {}, not {}",
                        self.key,
                        choices.join("/"),
                        self.quoted()
                    ),
                    &hint,
                )
            })
    }

    /// Free text that ends up in generated files: no control characters.
    pub fn line(&self) -> Result<String, Diagnostic> {
        if self.text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(self.error(
                format!(
                    "`{}` cannot contain newlines or control characters",
                    self.key
                ),
                "keep the value on one line",
            ));
        }
        Ok(self.text.to_string())
    }

    /// The exec form of a command, a JSON array of strings as in a Dockerfile
    /// (`["pg_isready", "-U", "app"]`): each word exactly, no shell, no word splitting;
    /// `\n` and `\"` inside a word are a newline and a quote. `None` when the value is
    /// not written that way (`[ -f /tmp/ok ]` is a shell command: no quote after `[`).
    pub fn exec_form(&self) -> Option<Result<Vec<String>, Diagnostic>> {
        let rest = self.text.trim().strip_prefix('[')?;
        if !(rest.trim_start().starts_with('"') || rest.trim() == "]") {
            return None;
        }
        let words = match serde_json::from_str::<Vec<String>>(self.text.trim()) {
            Ok(words) => words,
            Err(_) => {
                return Some(Err(self.error(
                    format!("`{}` starts like a JSON array but is not one", self.key),
                    r#"write the exec form as a JSON array of strings, e.g. `["pg_isready", "-U", "app"]`, or drop the brackets for a shell command"#,
                )))
            }
        };
        if words.first().is_none_or(|w| w.is_empty()) {
            return Some(Err(self.error(
                format!("`{}` has no program to run", self.key),
                "the array's first string names the program",
            )));
        }
        if words.iter().any(|w| w.contains('\0')) {
            return Some(Err(self.error(
                format!("`{}` contains a NUL character", self.key),
                "remove it: no program argument can hold one",
            )));
        }
        Some(Ok(words))
    }
}

/// `` `text` ``, or [`HIDDEN`] when it comes from a secret.
pub fn quote(text: &str, secret: bool) -> String {
    if secret {
        HIDDEN.to_string()
    } else {
        format!("`{text}`")
    }
}

/// A secret value as the bundle's `.env` holds it, so that stack's own reader reads back
/// exactly `value`. When [`compose_reads_exactly`] holds, docker-compose reads that same
/// form back exactly too; otherwise it is the project-file writer's literal form
/// ([`crate::project::writer::literal`]) and the value reaches Compose through the 0600
/// `docker-compose.override.yml`.
pub fn env_file_value(value: &str) -> String {
    compose_env_value(value).unwrap_or_else(|| crate::project::writer::literal(value))
}

/// Whether docker-compose reads `value` back exactly from the bundle's `.env` (v1 reads
/// it with python-dotenv, which expands `${NAME}` even in single quotes and has no
/// escape for it; v2 keeps single-quoted values as they are).
pub fn compose_reads_exactly(value: &str) -> bool {
    compose_env_value(value).is_some()
}

/// The `.env` form both docker-compose and stack read back exactly, if there is one.
/// Single quotes when the value has no `'`, `\\` or line break (python-dotenv unescapes
/// `\\\\` and `\\'` inside them), else double quotes escaping `\\ " \n \r \t`.
fn compose_env_value(value: &str) -> Option<String> {
    if value.contains("${") || value.ends_with('\\') {
        return None;
    }
    let plain = |c: char| c != '\'' && c != '\\' && c != '\n' && c != '\r';
    if value.chars().all(plain) {
        return Some(format!("'{value}'"));
    }
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // In double quotes stack reads `$NAME` as a reference and gives it back as it
            // was; any other `$` has no form both readers agree on.
            '$' if chars
                .peek()
                .is_some_and(|n| *n == '_' || n.is_ascii_alphabetic()) =>
            {
                out.push('$')
            }
            '$' => return None,
            c => out.push(c),
        }
    }
    out.push('"');
    Some(out)
}

/// The items of `ENV`, `LABELS` and `BUILD_ARGS`: split on commas that are not escaped,
/// where `\,` is a comma inside an item and `\\` a backslash (any other backslash stays as
/// it is, so a file without `\,` or `\\` reads as [`split_list`] reads it). Blanks at an
/// item's edges are dropped, and empty items. `None` for a lone backslash at the end.
pub fn split_escaped(text: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut item = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ (',' | '\\')) => item.push(next),
                Some(next) => {
                    item.push('\\');
                    item.push(next);
                }
                None => return None,
            },
            ',' => items.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    items.push(item);
    Some(
        items
            .iter()
            .map(|item| item.trim())
            .filter(|item| !item.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// One item as [`split_escaped`] reads it back: `\\` and `,` escaped.
pub fn escape_item(item: &str) -> String {
    item.replace('\\', "\\\\").replace(',', "\\,")
}

pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn describe_extra(extra: &str) -> String {
    let names: Vec<String> = extra.chars().map(|c| format!("`{c}`")).collect();
    match names.len() {
        0 => String::new(),
        _ => format!(" and {}", names.join(", ")),
    }
}

/// `[a-z0-9][a-z0-9<extra>]*`, 1–63 characters.
pub fn check_name(text: &str, extra: &str) -> bool {
    let mut chars = text.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first
        && text.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

/// `500ms`, `30s`, `2m`, `1h`, `1d` or bare seconds; compound forms like `1m30s` too.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let total = parse_duration_unbounded(text)?;
    // Compose, Docker and systemd read durations as Go's `time.Duration` (i64 nanoseconds).
    (total <= MAX_DURATION).then_some(total)
}

/// The longest duration Go's `time.Duration` holds: about 292 years.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

fn parse_duration_unbounded(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let add = number * millis;
        if !add.is_finite() || add > 1e13 {
            return None;
        }
        total = total.checked_add(Duration::from_millis(add as u64))?;
    }
    Some(total)
}

/// Compose's duration form: `1m30s`, `500ms`, `10s`.
pub fn compose_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let mut seconds = millis / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value<'_> {
        Value {
            key: "K",
            text,
            span: None,
            secret: false,
        }
    }

    #[test]
    fn exec_form_is_a_json_array_of_strings_and_nothing_else() {
        let words = |t: &str| value(t).exec_form().map(|r| r.map_err(|d| d.message));
        assert_eq!(
            words(r#"["pg_isready", "-U", "app"]"#),
            Some(Ok(vec!["pg_isready".into(), "-U".into(), "app".into()]))
        );
        assert_eq!(
            words(r#"["sh", "-c", "one\ntwo \"q\""]"#),
            Some(Ok(vec!["sh".into(), "-c".into(), "one\ntwo \"q\"".into()]))
        );
        // A shell command that starts with `[` stays a shell command.
        assert_eq!(words("[ -f /tmp/ok ]"), None);
        assert_eq!(words("pg_isready -U app"), None);
        assert!(matches!(words(r#"["pg_isready", -U]"#), Some(Err(_))));
        assert!(matches!(words("[]"), Some(Err(_))));
        assert!(matches!(words(r#"[""]"#), Some(Err(_))));
    }

    #[test]
    fn booleans() {
        for t in ["true", "YES", "On", "1"] {
            assert!(value(t).boolean().unwrap());
        }
        for t in ["false", "No", "OFF", "0"] {
            assert!(!value(t).boolean().unwrap());
        }
        assert!(value("maybe").boolean().is_err());
        assert!(value("").boolean().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("99999999999999999h"), None);
        assert_eq!(parse_duration("100000000h"), None);
        assert_eq!(parse_duration("9999999999999"), None);
        assert!(parse_duration("2562047h").is_some());
    }

    #[test]
    fn compose_durations() {
        assert_eq!(compose_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(compose_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(compose_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(compose_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn names() {
        assert!(check_name("order-api", "-"));
        assert!(!check_name("Order", "-"));
        assert!(!check_name("-x", "-"));
        assert!(!check_name("a;rm", "-"));
        assert!(!check_name("", "-"));
    }
}

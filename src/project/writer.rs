//! The project-file writer, beside the reader (`syntax`, `interpolate`): one place that
//! quotes a value for `stack.env`, `secrets.env` or an environment's files so that the
//! reader reads it back exactly. Property tests in `tests.rs` write any value (every
//! printable character, line breaks, `$`, quotes, backslashes) and read it back.

/// A value kept exactly as it is, with no interpolation (a secret, a literal from an
/// import): single-quoted when it can be (nothing is special inside single quotes), else
/// double-quoted with `\\ " \n \r \t` escaped and every `$` written `\$`.
pub fn literal(value: &str) -> String {
    if !value.contains(['\'', '\n', '\r']) && !value.chars().any(char::is_control) {
        return format!("'{value}'");
    }
    double_quoted(value, true)
}

/// A value whose `$NAME` and `${…}` are interpolation, as written (`$$` stays `$$`):
/// bare when that reads back the same, else double-quoted with `\\ " \n \r \t` escaped.
pub fn template(value: &str) -> String {
    let bare = !value.is_empty()
        && value.trim() == value
        && !value.contains(" #")
        && !value.starts_with('#')
        && !value.contains(['"', '\'', '\\'])
        && !value.chars().any(char::is_control);
    if bare {
        return value.to_string();
    }
    double_quoted(value, false)
}

/// `"…"` with the reader's escapes; `$` escaped as `\$` when `literal`.
fn double_quoted(value: &str, literal: bool) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if literal => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

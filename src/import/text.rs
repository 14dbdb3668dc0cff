//! Text of the written files (values are quoted by `crate::project::writer`), and the
//! Compose interpolation (`$VAR`, `${VAR:-default}`, `$$`) scanned so that names can be
//! listed and rewritten without changing anything else.

/// A piece of an interpolated Compose string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as written (`$$` stays `$$`).
    Text(String),
    /// `$NAME` or `${NAME<op><arg>}`: the name and the rest after it, as written.
    Var {
        name: String,
        /// `:-default`, `-default`, `:?err`, `?err`, or empty.
        rest: String,
        braced: bool,
    },
}

/// How deep `${…}` references nest in `text` (`$$` is a literal `$`): a linear scan.
pub fn interpolation_depth(text: &str) -> usize {
    scan_braces(text).0
}

/// Whether a `${` of `text` is never closed (`${NAME:-web`), which Compose refuses.
pub fn unclosed_interpolation(text: &str) -> bool {
    scan_braces(text).1 > 0
}

/// The deepest `${…}` nesting of `text` and how many are still open at its end.
fn scan_braces(text: &str) -> (usize, usize) {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' if depth > 0 => depth -= 1,
            _ => {}
        }
    }
    (deepest, depth)
}

/// Split `text` into pieces. A `$` that starts no reference stays text.
pub fn pieces(text: &str) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    let name_start = |c: char| c == '_' || c.is_ascii_alphabetic();
    let name_char = |c: char| c == '_' || c.is_ascii_alphanumeric();
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            literal.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                literal.push_str("$$");
                i += 2;
            }
            Some('{') => {
                // Find the matching brace, counting nested `${`.
                let mut depth = 1;
                let mut j = i + 2;
                while j < chars.len() && depth > 0 {
                    if chars[j] == '{' {
                        depth += 1;
                    } else if chars[j] == '}' {
                        depth -= 1;
                    }
                    j += 1;
                }
                let inner: String = chars[i + 2..j.saturating_sub(1).max(i + 2)]
                    .iter()
                    .collect();
                let name_len = inner.chars().take_while(|c| name_char(*c)).count();
                if depth != 0 || name_len == 0 || !inner.starts_with(name_start) {
                    literal.extend(&chars[i..j]);
                    i = j;
                    continue;
                }
                flush(&mut out, &mut literal);
                out.push(Piece::Var {
                    name: inner[..name_len].to_string(),
                    rest: inner[name_len..].to_string(),
                    braced: true,
                });
                i = j;
            }
            Some(&n) if name_start(n) => {
                let mut j = i + 1;
                while j < chars.len() && name_char(chars[j]) {
                    j += 1;
                }
                flush(&mut out, &mut literal);
                out.push(Piece::Var {
                    name: chars[i + 1..j].iter().collect(),
                    rest: String::new(),
                    braced: false,
                });
                i = j;
            }
            _ => {
                literal.push('$');
                i += 1;
            }
        }
    }
    flush(&mut out, &mut literal);
    out
}

fn flush(out: &mut Vec<Piece>, literal: &mut String) {
    if !literal.is_empty() {
        out.push(Piece::Text(std::mem::take(literal)));
    }
}

/// The pieces written back as text.
pub fn join(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Var {
                name,
                rest,
                braced: true,
            } => out.push_str(&format!("${{{name}{rest}}}")),
            Piece::Var { name, .. } => out.push_str(&format!("${name}")),
        }
    }
    out
}

/// Every name `text` refers to, nested defaults included.
pub fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in pieces(text) {
        if let Piece::Var { name, rest, .. } = piece {
            out.push(name);
            let arg = rest.trim_start_matches([':', '-', '?', '+']);
            out.extend(references(arg));
        }
    }
    out
}

/// `text` with every referenced name passed through `rename` (nested ones too).
pub fn rename(text: &str, rename: &dyn Fn(&str) -> Option<String>) -> String {
    let pieces: Vec<Piece> = pieces(text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Var { name, rest, braced } => {
                let op_len = rest.len() - rest.trim_start_matches([':', '-', '?', '+']).len();
                let (op, arg) = rest.split_at(op_len);
                let rest = format!("{op}{}", self::rename(arg, rename));
                Piece::Var {
                    name: rename(&name).unwrap_or(name),
                    rest,
                    braced,
                }
            }
            text => text,
        })
        .collect();
    join(&pieces)
}

/// `text` split at `sep`, except inside `${…}` (`vol:${DIR:-/a}` is two parts).
pub fn split_outside_vars(text: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'{') => {
                depth += 1;
                if let Some(last) = out.last_mut() {
                    last.push('$');
                }
                continue;
            }
            '}' if depth > 0 => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// A literal text (no interpolation wanted) as Compose or `stack.env` writes it: `$$`.
pub fn escape_dollars(text: &str) -> String {
    text.replace('$', "$$")
}

/// The text with `$$` read as `$`, when it holds no reference; `None` when it does.
pub fn as_literal(text: &str) -> Option<String> {
    let pieces = pieces(text);
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(&text.replace("$$", "$")),
            Piece::Var { .. } => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::writer;

    #[test]
    fn pieces_and_references() {
        assert_eq!(
            references("a${A:-${B}}b$C$$D ${ } $"),
            vec!["A".to_string(), "B".into(), "C".into()]
        );
        let text = "x${A:-${B-y}}z$C$$D";
        assert_eq!(join(&pieces(text)), text);
        let renamed = rename(text, &|n| (n != "C").then(|| format!("N_{n}")));
        assert_eq!(renamed, "x${N_A:-${N_B-y}}z$C$$D");
        assert_eq!(as_literal("a$$b"), Some("a$b".into()));
        assert_eq!(as_literal("a$b"), None);
        assert_eq!(
            split_outside_vars("v:${P:-/var/run/kong}:ro", ':'),
            vec!["v", "${P:-/var/run/kong}", "ro"]
        );
        assert_eq!(
            split_outside_vars("${B:-}:443:443", ':'),
            vec!["${B:-}", "443", "443"]
        );
    }

    #[test]
    fn values_read_back() {
        assert_eq!(writer::template("postgres:16"), "postgres:16");
        assert_eq!(writer::template("a b"), "a b");
        assert_eq!(writer::template(" a"), "\" a\"");
        assert_eq!(writer::template("say \"hi\" #x"), "\"say \\\"hi\\\" #x\"");
        assert_eq!(writer::template(""), "\"\"");
        assert_eq!(writer::literal("p$ss"), "'p$ss'");
        assert_eq!(writer::literal("it's$"), "\"it's\\$\"");
    }
}

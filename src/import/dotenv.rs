//! `.env` and `env_file` files as docker-compose reads them (python-dotenv): `KEY=VALUE`
//! lines, `export `, `#` comments, single quotes literal, double quotes with `\n \\ \"`
//! escapes. Only `${VAR}` forms are interpolated there, so each value comes out as
//! `stack.env` text: `${…}` kept, any other `$` written `$$`.

use super::text::{escape_dollars, pieces, Piece};

/// One assignment of an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    /// The value as `stack.env` text (interpolation kept, literal `$` as `$$`).
    pub template: String,
    /// 1-based line.
    pub line: usize,
}

/// A line that is not an assignment: its 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// Read an env file's text.
pub fn parse(text: &str) -> (Vec<Assignment>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=') else {
            skipped.push(Skipped {
                line: number,
                reason: "a name without `=` takes its value from the shell; not carried".into(),
            });
            continue;
        };
        let key = key.trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            skipped.push(Skipped {
                line: number,
                reason: "the text before `=` is not a variable name (not shown)".into(),
            });
            continue;
        }
        let rest = rest.trim_start();
        let template = if let Some(body) = rest.strip_prefix('\'') {
            let (value, consumed) = quoted(body, '\'', &lines, &mut i);
            if !consumed {
                skipped.push(Skipped {
                    line: number,
                    reason: "unterminated single quote".into(),
                });
                continue;
            }
            escape_dollars(&value)
        } else if let Some(body) = rest.strip_prefix('"') {
            let (value, consumed) = quoted(body, '"', &lines, &mut i);
            if !consumed {
                skipped.push(Skipped {
                    line: number,
                    reason: "unterminated double quote".into(),
                });
                continue;
            }
            interpolated(&unescape(&value))
        } else {
            let value = match rest.find(" #") {
                Some(cut) => &rest[..cut],
                None => rest,
            };
            interpolated(value.trim())
        };
        if super::text::interpolation_depth(&template) > super::yaml::MAX_INTERPOLATION_DEPTH {
            skipped.push(Skipped {
                line: number,
                reason: format!(
                    "the value nests `${{…}}` more than {} levels deep",
                    super::yaml::MAX_INTERPOLATION_DEPTH
                ),
            });
            continue;
        }
        out.push(Assignment {
            key,
            template,
            line: number,
        });
    }
    (out, skipped)
}

/// The body of a quoted value up to the closing quote, which may be on a later line.
fn quoted(body: &str, quote: char, lines: &[&str], next: &mut usize) -> (String, bool) {
    let mut value = String::new();
    let mut current = body.to_string();
    loop {
        let mut escaped = false;
        for (at, c) in current.char_indices() {
            if quote == '"' && c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            if c == quote && !escaped {
                value.push_str(&current[..at]);
                return (value, true);
            }
            escaped = false;
        }
        value.push_str(&current);
        value.push('\n');
        match lines.get(*next) {
            Some(line) => {
                current = line.to_string();
                *next += 1;
            }
            None => return (value, false),
        }
    }
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// python-dotenv expands `${NAME}` and `${NAME:-default}` only: keep those, escape
/// every other `$`.
fn interpolated(value: &str) -> String {
    // Literal `$$` in an env file is two dollars for python-dotenv.
    let mut out = String::new();
    for piece in pieces(&value.replace("$$", "\u{0}")) {
        match piece {
            Piece::Text(text) => out.push_str(&escape_dollars(&text).replace('\u{0}', "$$$$")),
            Piece::Var {
                name,
                rest,
                braced: true,
            } if rest.is_empty() || rest.starts_with(":-") || rest.starts_with('-') => {
                out.push_str(&format!("${{{name}{rest}}}"))
            }
            Piece::Var { name, rest, braced } => {
                let text = if braced {
                    format!("${{{name}{rest}}}")
                } else {
                    format!("${name}")
                };
                out.push_str(&escape_dollars(&text));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_python_dotenv_forms() {
        let (out, skipped) = parse(
            "# c\nexport A=1\nB = two words # comment\nC='lit $X'\nD=\"a\\nb ${E:-x} $F\"\nG\nH=\"multi\nline\"\n",
        );
        let pairs: Vec<(&str, &str)> = out
            .iter()
            .map(|a| (a.key.as_str(), a.template.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "lit $$X"),
                ("D", "a\nb ${E:-x} $$F"),
                ("H", "multi\nline"),
            ]
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 6);
    }
}

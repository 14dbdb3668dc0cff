//! `STACK_SECRETS_COMMAND`: an environment's secrets from where a team keeps them (a
//! parameter store, a password manager, a `sops` file). The command is I/O like reading
//! a file, so it runs here, before the configuration is built; its standard output
//! (`KEY=VALUE` lines) becomes one more secrets layer, held in memory only.
//!
//! Nothing of its output is ever shown: a malformed line is reported by its number,
//! never its text, and a failure names the command, never a value. Any problem refuses
//! the whole output, so there is never a partial set.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::syntax::{Entry, Piece, Template};
use super::{Layer, SourceKind, Sources};
use crate::error::{Diagnostic, Error, Result, Span};

/// The key that names the command.
pub const KEY: &str = "STACK_SECRETS_COMMAND";

/// How long the command may run.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The command the sources set (the last layer wins), with `${NAME}` references left for
/// `sh` to expand from its environment (which has `STACK_ENV`). `None` when unset or empty.
pub fn command(sources: &Sources) -> Option<String> {
    let entry = sources
        .layers
        .iter()
        .flat_map(|layer| layer.entries.iter())
        .rfind(|entry| entry.key == KEY)?;
    let mut text = String::new();
    for piece in &entry.value.pieces {
        match piece {
            Piece::Literal(literal) => text.push_str(literal),
            Piece::Var(var) => {
                text.push_str("${");
                text.push_str(&var.name);
                text.push('}');
            }
        }
    }
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Run `command` with `sh -c` in the project directory and add its output to `sources`
/// as a secrets layer, right after the environment's secrets file (so it wins over the
/// file, and `stack.local.env` and `--set` still win over it).
pub fn apply(sources: &mut Sources, command: &str) -> Result<()> {
    let stdout = run(&sources.dir, &sources.env, command)?;
    let entries = parse(command, &stdout).map_err(|d| Error::Invalid(vec![d]))?;
    let layer = Layer {
        kind: SourceKind::Secrets,
        name: Arc::from(KEY),
        path: None,
        entries,
    };
    let at = sources
        .layers
        .iter()
        .position(|l| matches!(l.kind, SourceKind::Local | SourceKind::Flag))
        .unwrap_or(sources.layers.len());
    sources.layers.insert(at, layer);
    Ok(())
}

/// The command's standard output; its failure is bad input (exit 2) naming the command
/// and showing its stderr (tools report there, not values).
fn run(dir: &std::path::Path, env: &str, command: &str) -> Result<Vec<u8>> {
    let shown = crate::printer::escape(command).into_owned();
    let failed = |what: String, stderr: &str| failure(&shown, what, stderr);
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("STACK_ENV", env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot be started with `sh`: {e}"), ""))?;
    let limit = super::syntax::MAX_FILE_BYTES as u64;
    let out_reader = read_pipe(child.stdout.take(), limit + 1);
    let err_reader = read_pipe(child.stderr.take(), 64 * 1024);
    let status = wait_until(&mut child, Instant::now() + TIMEOUT);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let Some(status) = status else {
        return Err(failed(
            format!(
                "did not finish within {}s and was stopped",
                TIMEOUT.as_secs()
            ),
            &stderr,
        ));
    };
    // First: a command stopped by the closed pipe (`yes`) failed because of its size.
    if stdout.len() as u64 > limit {
        return Err(failed(format!("printed more than {limit} bytes"), ""));
    }
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited {code}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(failed(how, &stderr));
    }
    Ok(stdout)
}

/// The error of a failed command: what went wrong, the last lines of its stderr.
fn failure(shown: &str, what: String, stderr: &str) -> Error {
    let tail: Vec<String> = stderr
        .trim()
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|l| crate::printer::escape(l).into_owned())
        .collect();
    let said = if tail.is_empty() {
        String::new()
    } else {
        format!("; it said: {}", tail.join(" / "))
    };
    Error::Invalid(vec![Diagnostic::new(format!("`{KEY}` (`{shown}`) {what}{said}")).hint(
        "run the command yourself to see what it prints; it must print `KEY=VALUE` lines and exit 0",
    )])
}

/// Read at most `limit` bytes of `pipe` on a thread of its own (so neither pipe of the
/// child fills up while the other is read).
fn read_pipe(
    mut pipe: Option<impl Read + Send + 'static>,
    limit: u64,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = pipe.as_mut() {
            let _ = pipe.take(limit).read_to_end(&mut buf);
        }
        buf
    })
}

/// The child's exit status, or none when `deadline` passed first (the child is then
/// killed).
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `KEY=VALUE` lines (blank lines and `#` comments skipped, an optional `export `, a value
/// in matching quotes taken without them, values literal). Pure. The error names the
/// line number, never its text.
pub fn parse(command: &str, stdout: &[u8]) -> std::result::Result<Vec<Entry>, Diagnostic> {
    let shown = crate::printer::escape(command).into_owned();
    let bad = |line: usize, what: &str| {
        Diagnostic::new(format!(
            "`{KEY}` (`{shown}`) printed a malformed line {line}: {what}; none of its values were used"
        ))
        .hint("it must print only `KEY=VALUE` lines (and blank or `#` lines); the line is not shown since it may hold a secret")
    };
    let Ok(text) = std::str::from_utf8(stdout) else {
        return Err(bad(0, "the output is not UTF-8 text"));
    };
    let source: Arc<str> = Arc::from(KEY);
    let mut entries: Vec<Entry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad(number, "no `=`"));
        };
        let name = name.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(bad(number, "the name is not `[A-Za-z_][A-Za-z0-9_]*`"));
        }
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(end)) if value.len() >= 2 && q == end => {
                &value[1..value.len() - 1]
            }
            _ => value,
        };
        entries.retain(|e| e.key != name);
        entries.push(Entry {
            key: name.to_string(),
            value: Template {
                pieces: vec![Piece::Literal(value.to_string())],
            },
            span: Span {
                source: source.clone(),
                line: number as u32,
                col: 1,
                len: name.len().max(1) as u32,
                // Never the line itself: it holds the value.
                line_text: Arc::from(""),
            },
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_literal_entries() {
        let out =
            b"# from sops\nexport DB_PASSWORD='pa$$ word'\n\nAPI_TOKEN=\"x=y\"\nPLAIN=abc$HOME\n";
        let entries = parse("cmd", out).unwrap();
        let got: Vec<(String, Vec<Piece>)> = entries
            .into_iter()
            .map(|e| (e.key, e.value.pieces))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "DB_PASSWORD".to_string(),
                    vec![Piece::Literal("pa$$ word".into())]
                ),
                ("API_TOKEN".to_string(), vec![Piece::Literal("x=y".into())]),
                ("PLAIN".to_string(), vec![Piece::Literal("abc$HOME".into())]),
            ]
        );
    }

    #[test]
    fn a_malformed_line_refuses_everything_without_showing_it() {
        for out in [&b"A=1\nhunter2\n"[..], b"A=1\n9X=hunter2\n", b"\xff=1\n"] {
            let error = parse("op read", out).unwrap_err();
            let text = error.render();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(
                text.contains("STACK_SECRETS_COMMAND") && text.contains("op read"),
                "{text}"
            );
        }
    }
}

//! The one format in which a server-side script answers: a line
//! `stack-answer<TAB>v1<TAB><kind>[<TAB>key=value]…`, written by the shell function
//! [`SHELL`] and read by [`parse`] (and [`Answer::parse_line`] for a script that answers
//! while it runs) into the typed answers below. Every other line on the script's stdout
//! is ignored, so no message a command prints can be mistaken for an answer. A release id
//! is a [`ReleaseId`], parsed once. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// The first field of every answer line.
const MARK: &str = "stack-answer";

/// The version of the format this stack writes and reads.
pub const VERSION: &str = "v1";

/// Shell: the function `A KIND [key=value]…` that prints one answer line (a tab or a
/// newline inside a value becomes a space). Put it first in a script that answers.
pub const SHELL: &str = "A() { printf 'stack-answer\\tv1\\t%s' \"$1\"; shift; \
     for f in \"$@\"; do printf '\\t%s' \"$(printf '%s' \"$f\" | tr '\\t\\n' '  ')\"; done; printf '\\n'; };";

/// One answer line: its kind and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Answer {
    /// The answer on `line`; `None` for a line that is not an answer.
    pub fn parse_line(line: &str) -> Result<Option<Answer>> {
        let mut parts = line.trim_end_matches(['\r', '\n']).split('\t');
        if parts.next() != Some(MARK) {
            return Ok(None);
        }
        let version = parts.next().unwrap_or_default();
        if version != VERSION {
            return Err(Error::outside(format!(
                "the server answered in format `{version}`, and this stack (version {}) reads `{VERSION}`: the server's stack version does not match this one",
                env!("CARGO_PKG_VERSION")
            ))
            .with_hint("use the same stack version here and on the server (`stack deploy` installs it there)"));
        }
        let kind = parts.next().unwrap_or_default().to_string();
        let fields = parts
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Some(Answer { kind, fields }))
    }

    /// The field `key`, empty when missing.
    pub fn field(&self, key: &str) -> &str {
        self.fields.get(key).map(String::as_str).unwrap_or_default()
    }

    /// The field `key` as a release id (`None` when empty or not one).
    pub fn release(&self, key: &str) -> Option<ReleaseId> {
        ReleaseId::from_link(self.field(key))
    }
}

/// Every answer in a script's output, in order.
pub fn parse(text: &str) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for line in text.lines() {
        answers.extend(Answer::parse_line(line)?);
    }
    Ok(answers)
}

/// The answer of `kind` in `text`; an error naming `what` when the server gave none.
pub fn one(text: &str, kind: &str, what: &str) -> Result<Answer> {
    parse(text)?
        .into_iter()
        .find(|a| a.kind == kind)
        .ok_or_else(|| {
            Error::outside(format!(
                "the server gave no answer to `{what}`; it said: {}",
                text.trim()
            ))
        })
}

/// A release: `<env>-<YYYYMMDDTHHMMSSZ>-<8 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ReleaseId(String);

impl ReleaseId {
    /// `text` when it is a release id.
    pub fn parse(text: &str) -> Option<ReleaseId> {
        let (rest, digest) = text.rsplit_once('-')?;
        let (env, time) = rest.rsplit_once('-')?;
        let time_ok = time.len() == 16
            && time.as_bytes()[8] == b'T'
            && time.ends_with('Z')
            && time[..8]
                .bytes()
                .chain(time[9..15].bytes())
                .all(|b| b.is_ascii_digit());
        let digest_ok = digest.len() == 8 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        (!env.is_empty() && time_ok && digest_ok).then(|| ReleaseId(text.to_string()))
    }

    /// The release a link target (`releases/<id>` or a full path) points at.
    pub fn from_link(target: &str) -> Option<ReleaseId> {
        ReleaseId::parse(target.trim().rsplit('/').next()?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The environment the release belongs to.
    pub fn env(&self) -> &str {
        let end = self.0.len() - "-YYYYMMDDTHHMMSSZ-01234567".len();
        &self.0[..end]
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server said to "check the free space and take the lock".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAnswer {
    /// Taken; `current` is the last good release (or `current`'s), if any.
    Locked { current: Option<ReleaseId> },
    /// Another deploy holds it: its owner file, on one line.
    Held { holder: String },
    /// Too little free disk space, in KiB.
    NoSpace { free_kb: u64 },
}

impl LockAnswer {
    pub fn of(text: &str) -> Result<LockAnswer> {
        let answer = one(text, "lock", "take the lock")?;
        Ok(match answer.field("state") {
            "locked" => LockAnswer::Locked {
                current: answer.release("current"),
            },
            "held" => LockAnswer::Held {
                holder: answer.field("holder").trim().to_string(),
            },
            _ => LockAnswer::NoSpace {
                free_kb: answer.field("free_kb").parse().unwrap_or(0),
            },
        })
    }
}

/// Who holds the lock (`None`: free), as `stack lock release` reads it.
pub fn lock_holder(text: &str) -> Result<Option<String>> {
    let answer = one(text, "lock", "read the lock")?;
    Ok((answer.field("state") == "held").then(|| answer.field("holder").trim().to_string()))
}

/// The releases the server pruned.
pub fn pruned(text: &str) -> Result<Vec<ReleaseId>> {
    Ok(parse(text)?
        .iter()
        .filter(|a| a.kind == "pruned")
        .filter_map(|a| a.release("release"))
        .collect())
}

/// What the server said of the systemd unit it was asked to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitAnswer {
    /// The server has no systemd.
    NoSystemd,
    /// A unit of that name that stack did not write, left alone.
    Foreign { path: String },
    /// Installed and enabled; the server's `uname -sm` and the sum of its stack binary.
    Installed { uname: String, sum: String },
}

impl UnitAnswer {
    /// `None` when the script failed before it answered.
    pub fn of(text: &str) -> Result<Option<UnitAnswer>> {
        let Some(answer) = parse(text)?.into_iter().find(|a| a.kind == "unit") else {
            return Ok(None);
        };
        Ok(Some(match answer.field("state") {
            "none" => UnitAnswer::NoSystemd,
            "foreign" => UnitAnswer::Foreign {
                path: answer.field("path").to_string(),
            },
            _ => UnitAnswer::Installed {
                uname: answer.field("uname").to_string(),
                sum: answer.field("sum").to_string(),
            },
        }))
    }
}

/// A step of the no-change check, as the server reports it while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnchangedAnswer {
    /// The lock is held: go the long way.
    Held,
    /// `current` is not the last good release, or was made from something else.
    Changed,
    /// `current` (`release`) was made from the same key; its pins follow.
    Same { release: Option<ReleaseId> },
    /// `current` pinned `image` to `id`.
    Pin { image: String, id: String },
    /// Every pin was said: waiting for the verdict.
    End,
    /// The verdict was "unchanged" and the audit log says so.
    Unchanged { release: Option<ReleaseId> },
}

impl UnchangedAnswer {
    /// The step on `line`; `None` for a line that is not one.
    pub fn of(line: &str) -> Result<Option<UnchangedAnswer>> {
        let Some(answer) = Answer::parse_line(line)? else {
            return Ok(None);
        };
        Ok(match (answer.kind.as_str(), answer.field("state")) {
            ("unchanged", "held") => Some(UnchangedAnswer::Held),
            ("unchanged", "changed") => Some(UnchangedAnswer::Changed),
            ("unchanged", "end") => Some(UnchangedAnswer::End),
            ("unchanged", "same") => Some(UnchangedAnswer::Same {
                release: answer.release("release"),
            }),
            ("unchanged", "kept") => Some(UnchangedAnswer::Unchanged {
                release: answer.release("release"),
            }),
            ("pin", _) => Some(UnchangedAnswer::Pin {
                image: answer.field("image").to_string(),
                id: answer.field("id").to_string(),
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the shell helper prints, through a real `sh`.
    fn shell(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("{SHELL} {script}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    const ID: &str = "staging-20261207T093817Z-0a1b2c3d";

    #[test]
    fn release_ids_parse_once() {
        let id = ReleaseId::parse(ID).unwrap();
        assert_eq!(id.env(), "staging");
        assert_eq!(id.as_str(), ID);
        let dashed = ReleaseId::parse("my-env-20261207T093817Z-0a1b2c3d").unwrap();
        assert_eq!(dashed.env(), "my-env");
        assert_eq!(
            ReleaseId::from_link(&format!("/srv/app/releases/{ID}\n")),
            Some(id)
        );
        for bad in [
            "",
            "staging",
            "-20261207T093817Z-0a1b2c3d",
            "staging-20261207T093817Z-0a1b2c3",
            "staging-20261207X093817Z-0a1b2c3d",
            "staging-20261207T093817Z-0a1b2c3g",
            "staging-2026120T0938177Z-0a1b2c3d",
        ] {
            assert_eq!(ReleaseId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_shell_helper_writes_what_the_parser_reads() {
        let text = shell(&format!(
            "echo noise; A lock state=locked current=releases/{ID}; A lock state=held 'holder=owner=a b\ttime=1\nmessage=x=y'"
        ));
        let answers = parse(&text).unwrap();
        assert_eq!(answers.len(), 2, "{text}");
        assert_eq!(
            LockAnswer::of(&text).unwrap(),
            LockAnswer::Locked {
                current: ReleaseId::parse(ID)
            }
        );
        assert_eq!(answers[1].field("holder"), "owner=a b time=1 message=x=y");
    }

    #[test]
    fn lock_answers() {
        let held = shell("A lock state=held 'holder=owner=me time=now '");
        assert_eq!(
            LockAnswer::of(&held).unwrap(),
            LockAnswer::Held {
                holder: "owner=me time=now".into()
            }
        );
        let full = shell("A lock state=nospace free_kb=2048");
        assert_eq!(
            LockAnswer::of(&full).unwrap(),
            LockAnswer::NoSpace { free_kb: 2048 }
        );
        let first = shell("A lock state=locked current=");
        assert_eq!(
            LockAnswer::of(&first).unwrap(),
            LockAnswer::Locked { current: None }
        );
        assert_eq!(lock_holder(&shell("A lock state=free")).unwrap(), None);
        let error = LockAnswer::of("mkdir: permission denied\n").unwrap_err();
        assert!(error.render().contains("no answer"), "{}", error.render());
    }

    #[test]
    fn pruned_and_unit_answers() {
        let text = shell(&format!("A pruned release={ID}; A pruned release=junk"));
        assert_eq!(pruned(&text).unwrap(), vec![ReleaseId::parse(ID).unwrap()]);
        assert_eq!(
            UnitAnswer::of(&shell("A unit state=foreign path=/etc/x.service")).unwrap(),
            Some(UnitAnswer::Foreign {
                path: "/etc/x.service".into()
            })
        );
        assert_eq!(UnitAnswer::of("").unwrap(), None);
    }

    #[test]
    fn unchanged_steps() {
        let text = shell(&format!(
            "A unchanged state=held; A unchanged state=same release={ID}; A pin image=redis:7 id=sha256:1; A unchanged state=end; A unchanged state=kept release={ID}"
        ));
        let steps: Vec<_> = text
            .lines()
            .filter_map(|l| UnchangedAnswer::of(l).unwrap())
            .collect();
        assert_eq!(
            steps,
            vec![
                UnchangedAnswer::Held,
                UnchangedAnswer::Same {
                    release: ReleaseId::parse(ID)
                },
                UnchangedAnswer::Pin {
                    image: "redis:7".into(),
                    id: "sha256:1".into()
                },
                UnchangedAnswer::End,
                UnchangedAnswer::Unchanged {
                    release: ReleaseId::parse(ID)
                },
            ]
        );
    }

    #[test]
    fn another_version_is_a_clear_error() {
        let error = parse("stack-answer\tv2\tlock\tstate=locked\n").unwrap_err();
        let text = error.render();
        assert!(text.contains("`v2`"), "{text}");
        assert!(text.contains("stack version"), "{text}");
        assert!(text.contains(VERSION), "{text}");
    }
}

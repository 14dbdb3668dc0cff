//! The `.env`-style syntax of one project file: lines, keys, quotes, escapes and the
//! interpolation templates inside values. Pure: text in, entries out, no I/O. The
//! `$` template parsing lives in `template.rs`.

mod template;

use std::sync::Arc;

use crate::error::{Diagnostic, Span};

/// One `KEY=VALUE` assignment as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Template,
    /// Where the key is written.
    pub span: Span,
}

/// A value with its interpolations still to be resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Literal(String),
    Var(VarRef),
}

/// `$NAME` or `${NAME<op><arg>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct VarRef {
    pub name: String,
    pub op: Op,
    pub arg: Template,
    pub span: Span,
    /// `${NAME…}` rather than `$NAME`.
    pub braced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `$VAR`, `${VAR}`
    Plain,
    /// `${VAR:-default}`: default when unset or empty.
    DefaultIfEmpty,
    /// `${VAR-default}`: default when unset.
    DefaultIfUnset,
    /// `${VAR:?message}`: error when unset or empty.
    ErrorIfEmpty,
    /// `${VAR?message}`: error when unset.
    ErrorIfUnset,
    /// `${VAR:+alt}`: alt when set and non-empty.
    AltIfNonEmpty,
    /// `${VAR+alt}`: alt when set.
    AltIfSet,
}

impl Template {
    pub fn literal(text: impl Into<String>) -> Self {
        Template {
            pieces: vec![Piece::Literal(text.into())],
        }
    }

    /// Names this template refers to, nested defaults included.
    pub fn references(&self) -> Vec<&VarRef> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            if let Piece::Var(var) = piece {
                out.push(var);
                out.extend(var.arg.references());
            }
        }
        out
    }

    fn push_char(&mut self, c: char) {
        if let Some(Piece::Literal(text)) = self.pieces.last_mut() {
            text.push(c);
        } else {
            self.pieces.push(Piece::Literal(c.to_string()));
        }
    }
}

/// Largest file we read; a project file is a few kilobytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Parse a whole file. `source` is the name shown in errors.
pub fn parse(source: &str, bytes: &[u8]) -> Result<Vec<Entry>, Vec<Diagnostic>> {
    let source: Arc<str> = Arc::from(source);
    if bytes.len() > MAX_FILE_BYTES {
        return Err(vec![Diagnostic::new(format!(
            "`{source}` is {} bytes; a project file may be at most {MAX_FILE_BYTES}",
            bytes.len()
        ))]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() as u32 + 1;
            let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
            let col = valid[line_start..].chars().count() as u32 + 1;
            let span = Span {
                source: source.clone(),
                line,
                col,
                len: 1,
                line_text: Arc::from(&valid[line_start..]),
            };
            return Err(vec![Diagnostic::new(format!(
                "`{source}` is not valid UTF-8"
            ))
            .at(&span)
            .hint("save the file as UTF-8 text")]);
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Parser::new(source, text).parse_all()
}

struct Parser<'a> {
    source: Arc<str>,
    text: &'a str,
    chars: Vec<char>,
    /// Index in `chars` where the current line starts.
    line_start: usize,
    /// The text of the last line a span was made on, shared by every span on it: a line
    /// with many references is stored once, not once per reference.
    line_cache: std::cell::RefCell<Option<(u32, Arc<str>)>>,
    pos: usize,
    line: u32,
    col: u32,
    /// Inside a double-quoted value: escapes apply and newlines are part of the value.
    double: bool,
    /// How many `${…}` we are inside; bounded so hostile input cannot exhaust the stack.
    depth: u32,
    /// References read so far, against [`MAX_REFERENCES`].
    references: usize,
    /// A bound of the whole file was passed: stop parsing.
    exhausted: bool,
}

/// Deepest nesting of `${VAR:-${…}}` accepted.
const MAX_NESTING: u32 = 32;

/// Most assignments in one file. A project has hundreds of keys; the bound keeps the
/// memory of a hostile file (a few bytes a line, each a parsed entry) small.
pub const MAX_ENTRIES: usize = 10_000;

/// Most `$` references in one file, for the same reason.
pub const MAX_REFERENCES: usize = 50_000;

type PResult<T> = Result<T, Diagnostic>;

impl<'a> Parser<'a> {
    fn new(source: Arc<str>, text: &'a str) -> Self {
        Parser {
            source,
            text,
            chars: text.chars().collect(),
            line_start: 0,
            line_cache: std::cell::RefCell::new(None),
            pos: 0,
            line: 1,
            col: 1,
            double: false,
            depth: 0,
            references: 0,
            exhausted: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
            self.line_start = self.pos;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn span(&self, line: u32, col: u32, len: u32) -> Span {
        let line_text = self.line_text(line);
        Span {
            source: self.source.clone(),
            line,
            col,
            len: len.max(1),
            line_text,
        }
    }

    /// The text of `line` (1-based), without its line break.
    fn line_text(&self, line: u32) -> Arc<str> {
        let mut cache = self.line_cache.borrow_mut();
        if let Some((cached, text)) = cache.as_ref() {
            if *cached == line {
                return text.clone();
            }
        }
        let text: String = if line == self.line {
            self.chars[self.line_start.min(self.chars.len())..]
                .iter()
                .take_while(|c| **c != '\n')
                .collect()
        } else {
            // Spans are made on the current line; this is only a fallback.
            let index = (line as usize).saturating_sub(1);
            self.text.split('\n').nth(index).unwrap_or("").to_string()
        };
        let text: Arc<str> = Arc::from(text.strip_suffix('\r').unwrap_or(&text));
        *cache = Some((line, text.clone()));
        text
    }

    fn here(&self, len: u32) -> Span {
        self.span(self.line, self.col, len)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some('\n'))
            || (self.peek() == Some('\r') && matches!(self.peek_at(1), None | Some('\n')))
    }

    fn skip_rest_of_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn parse_all(mut self) -> Result<Vec<Entry>, Vec<Diagnostic>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        while self.peek().is_some() {
            match self.parse_line() {
                Ok(Some(entry)) if entries.len() >= MAX_ENTRIES => {
                    errors.push(self.too_many(&entry.span, "assignments", MAX_ENTRIES));
                    break;
                }
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(diagnostic) => {
                    errors.push(diagnostic);
                    if errors.len() >= 20 || self.exhausted {
                        break;
                    }
                    // Resume at the next line so one typo does not hide the next.
                    let line = self.line;
                    while self.peek().is_some() && self.line == line {
                        self.bump();
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(entries)
        } else {
            Err(errors)
        }
    }

    fn too_many(&mut self, span: &Span, what: &str, limit: usize) -> Diagnostic {
        self.exhausted = true;
        Diagnostic::new(format!(
            "`{}` has more than {limit} {what}, the most a project file may hold",
            self.source
        ))
        .at(span)
        .hint("a project file holds a few hundred `KEY=VALUE` lines; is this the right file?")
    }

    /// Count one reference against [`MAX_REFERENCES`].
    fn count_reference(&mut self, span: &Span) -> PResult<()> {
        self.references += 1;
        if self.references > MAX_REFERENCES {
            return Err(self.too_many(span, "`$` references", MAX_REFERENCES));
        }
        Ok(())
    }

    fn parse_line(&mut self) -> PResult<Option<Entry>> {
        self.skip_blanks();
        if self.at_line_end() || self.peek() == Some('#') {
            self.skip_rest_of_line();
            return Ok(None);
        }
        let (mut line, mut col) = (self.line, self.col);
        let mut word = self.read_word();
        if word == "export" && matches!(self.peek(), Some(' ' | '\t')) {
            self.skip_blanks();
            (line, col) = (self.line, self.col);
            word = self.read_word();
        }
        let key_span = self.span(line, col, word.chars().count() as u32);
        if word.is_empty() {
            return Err(Diagnostic::new("expected `KEY=VALUE`")
                .at(&self.here(1))
                .hint("each line is `KEY=VALUE`, a blank line or a `#` comment"));
        }
        // In a secrets file a line that is not `KEY=…` may be a pasted value: not quoted.
        let secret = key_span.is_secret();
        check_key(&word, &key_span).map_err(|d| if secret { hidden_key(&key_span) } else { d })?;
        self.skip_blanks();
        if self.peek() != Some('=') {
            if secret {
                return Err(hidden_key(&key_span));
            }
            return Err(Diagnostic::new(format!("expected `=` after key `{word}`"))
                .at(&self.here(1))
                .hint(format!("write `{word}=VALUE`")));
        }
        self.bump();
        self.skip_blanks();
        let value = match self.peek() {
            Some('\'') => self.single_quoted()?,
            Some('"') => self.double_quoted()?,
            _ => self.unquoted()?,
        };
        Ok(Some(Entry {
            key: word,
            value,
            span: key_span,
        }))
    }

    fn read_word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c == '=' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
                break;
            }
            word.push(c);
            self.bump();
        }
        word
    }

    /// After a closing quote only blanks and a comment may follow.
    fn end_of_value(&mut self) -> PResult<()> {
        self.skip_blanks();
        if self.at_line_end() {
            self.skip_rest_of_line();
            return Ok(());
        }
        if self.peek() == Some('#') {
            self.skip_rest_of_line();
            return Ok(());
        }
        Err(Diagnostic::new("unexpected text after the closing quote")
            .at(&self.here(1))
            .hint("quote the whole value, or start a comment with ` #`"))
    }

    fn single_quoted(&mut self) -> PResult<Template> {
        let open = self.here(1);
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(Diagnostic::new("unterminated single quote")
                        .at(&open)
                        .hint("add the closing `'`"))
                }
                Some('\'') => break,
                Some(c) => text.push(c),
            }
        }
        self.end_of_value()?;
        Ok(Template::literal(text.replace("\r\n", "\n")))
    }

    fn double_quoted(&mut self) -> PResult<Template> {
        let open = self.here(1);
        self.bump();
        self.double = true;
        let template = self.template(Mode::Double, &open);
        self.double = false;
        let template = template?;
        // `template` stops on the closing quote without consuming it.
        if self.peek() != Some('"') {
            return Err(Diagnostic::new("unterminated double quote")
                .at(&open)
                .hint("add the closing `\"`"));
        }
        self.bump();
        self.end_of_value()?;
        Ok(template)
    }

    fn unquoted(&mut self) -> PResult<Template> {
        let open = self.here(1);
        let mut template = self.template(Mode::Unquoted, &open)?;
        self.skip_rest_of_line();
        // Trailing blanks before a comment or the end of line are not part of the value.
        if let Some(Piece::Literal(text)) = template.pieces.last_mut() {
            let trimmed = text.trim_end_matches([' ', '\t', '\r']).len();
            text.truncate(trimmed);
            if text.is_empty() {
                template.pieces.pop();
            }
        }
        Ok(template)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unquoted,
    Double,
    Braced,
}

/// Keys match `[A-Z_][A-Z0-9_]*`.
/// A line of a secrets file that does not start with `KEY=`: what it holds is not shown.
fn hidden_key(span: &Span) -> Diagnostic {
    Diagnostic::new("a line that does not start with `KEY=` (not shown: it may be a secret value)")
        .at(span)
        .hint("each line is `KEY=VALUE` with an upper-case `KEY`; a value that spans lines goes in double quotes")
}

pub fn check_key(key: &str, span: &Span) -> Result<(), Diagnostic> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_uppercase());
    if first_ok && chars.all(|c| c == '_' || c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Ok(());
    }
    let suggestion: String = key
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    let mut diagnostic = Diagnostic::new(format!(
        "invalid key `{key}`: keys use upper-case letters, digits and `_`, and do not start with a digit"
    ))
    .at(span);
    if suggestion != key
        && suggestion
            .chars()
            .all(|c| c == '_' || c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        diagnostic = diagnostic.hint(format!("did you mean `{suggestion}`?"));
    }
    Err(diagnostic)
}

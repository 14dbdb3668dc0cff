//! The interpolation templates inside values: `$NAME`, `${NAME}` and `${NAME<op><arg>}`
//! with nested defaults, read by the file parser.

use super::{Mode, Op, PResult, Parser, Piece, Template, VarRef, MAX_NESTING};
use crate::error::{Diagnostic, Span};

impl<'a> Parser<'a> {
    /// Read template text until the end of the value in `mode` (not consumed).
    pub(super) fn template(&mut self, mode: Mode, open: &Span) -> PResult<Template> {
        let mut template = Template::default();
        loop {
            let Some(c) = self.peek() else {
                return match mode {
                    Mode::Unquoted => Ok(template),
                    Mode::Double => Err(Diagnostic::new("unterminated double quote")
                        .at(open)
                        .hint("add the closing `\"`")),
                    Mode::Braced => Err(Diagnostic::new("unterminated `${`")
                        .at(open)
                        .hint("close the interpolation with `}`")),
                };
            };
            match (mode, c) {
                (Mode::Unquoted, '\n') => return Ok(template),
                (Mode::Unquoted, '\r') if matches!(self.peek_at(1), None | Some('\n')) => {
                    return Ok(template)
                }
                // A lone CR ends no line here (old Mac line endings would make the whole
                // file one value): said, instead of a confusing error on that value.
                (Mode::Unquoted | Mode::Braced, '\r')
                    if !self.double && self.peek_at(1) != Some('\n') =>
                {
                    return Err(Diagnostic::new(
                        "a carriage return (`\\r`) without a line feed in an unquoted value",
                    )
                    .at(&self.here(1))
                    .hint("save the file with LF (or CRLF) line endings; a carriage return in a value is `\\r` inside double quotes"))
                }
                (Mode::Unquoted, '#') if self.prev_is_blank() => return Ok(template),
                (Mode::Double, '"') => return Ok(template),
                (Mode::Braced, '}') => return Ok(template),
                (Mode::Braced, '\n') if !self.double => {
                    return Err(Diagnostic::new("unterminated `${`")
                        .at(open)
                        .hint("close the interpolation with `}`"))
                }
                (Mode::Double | Mode::Braced, '\\') if self.double => {
                    self.bump();
                    match self.bump() {
                        Some('n') => template.push_char('\n'),
                        Some('t') => template.push_char('\t'),
                        Some('r') => template.push_char('\r'),
                        Some('"') => template.push_char('"'),
                        Some('\\') => template.push_char('\\'),
                        Some('$') => template.push_char('$'),
                        Some('\n') => {} // line continuation
                        Some(other) => {
                            template.push_char('\\');
                            template.push_char(other);
                        }
                        None => {
                            return Err(Diagnostic::new("unterminated double quote")
                                .at(open)
                                .hint("add the closing `\"`"))
                        }
                    }
                }
                (_, '$') => self.dollar(&mut template)?,
                (_, '\r') if self.peek_at(1) == Some('\n') => {
                    self.bump();
                }
                _ => {
                    template.push_char(c);
                    self.bump();
                }
            }
        }
    }

    fn prev_is_blank(&self) -> bool {
        self.pos > 0 && matches!(self.chars[self.pos - 1], ' ' | '\t')
    }

    fn dollar(&mut self, template: &mut Template) -> PResult<()> {
        let start = self.here(1);
        self.bump();
        match self.peek() {
            Some('$') => {
                self.bump();
                template.push_char('$');
                Ok(())
            }
            Some('{') => self.braced(&start, template),
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.read_name();
                let span = self.span(start.line, start.col, name.chars().count() as u32 + 1);
                self.count_reference(&span)?;
                template.pieces.push(Piece::Var(VarRef {
                    name,
                    op: Op::Plain,
                    arg: Template::default(),
                    span,
                    braced: false,
                }));
                Ok(())
            }
            _ => Err(Diagnostic::new("invalid interpolation: a lone `$`")
                .at(&start)
                .hint("write `$$` for a literal `$`, or single-quote the value")),
        }
    }

    /// `${NAME}` or `${NAME<op>ARG}` after the `$` at `start`, its `{` next.
    fn braced(&mut self, start: &Span, template: &mut Template) -> PResult<()> {
        self.bump();
        let name = self.read_name();
        let span = self.span(start.line, start.col, name.chars().count() as u32 + 2);
        if name.is_empty() {
            return Err(
                Diagnostic::new("invalid interpolation: expected a name after `${`")
                    .at(&self.here(1))
                    .hint("write `${NAME}`, or `$$` for a literal `$`"),
            );
        }
        let op = self.read_op();
        let Some(op) = op else {
            if matches!(self.peek(), None | Some('\n' | '\r' | '"')) {
                return Err(Diagnostic::new("unterminated `${`")
                    .at(start)
                    .hint("close the interpolation with `}`"));
            }
            return Err(Diagnostic::new(format!(
                "invalid interpolation `${{{name}`: expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"
            ))
            .at(&self.here(1))
            .hint("write `$$` for a literal `$`"));
        };
        let arg = if op == Op::Plain {
            Template::default()
        } else {
            if self.depth >= MAX_NESTING {
                return Err(Diagnostic::new(format!(
                    "interpolation nested more than {MAX_NESTING} levels deep"
                ))
                .at(start));
            }
            self.depth += 1;
            let arg = self.template(Mode::Braced, start);
            self.depth -= 1;
            arg?
        };
        if self.peek() != Some('}') {
            return Err(Diagnostic::new("unterminated `${`")
                .at(start)
                .hint("close the interpolation with `}`"));
        }
        self.bump();
        self.count_reference(&span)?;
        template.pieces.push(Piece::Var(VarRef {
            name,
            op,
            arg,
            span,
            braced: true,
        }));
        Ok(())
    }

    fn read_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            let ok =
                c == '_' || c.is_ascii_alphabetic() || (!name.is_empty() && c.is_ascii_digit());
            if !ok {
                break;
            }
            name.push(c);
            self.bump();
        }
        name
    }

    fn read_op(&mut self) -> Option<Op> {
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('}'), _) => return Some(Op::Plain),
            (Some(':'), Some('-')) => Op::DefaultIfEmpty,
            (Some(':'), Some('?')) => Op::ErrorIfEmpty,
            (Some(':'), Some('+')) => Op::AltIfNonEmpty,
            (Some('-'), _) => Op::DefaultIfUnset,
            (Some('?'), _) => Op::ErrorIfUnset,
            (Some('+'), _) => Op::AltIfSet,
            _ => return None,
        };
        let width = if matches!(
            op,
            Op::DefaultIfEmpty | Op::ErrorIfEmpty | Op::AltIfNonEmpty
        ) {
            2
        } else {
            1
        };
        for _ in 0..width {
            self.bump();
        }
        Some(op)
    }
}

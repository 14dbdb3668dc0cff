//! A YAML document read into a small tree with a budget: the number of values and the
//! bytes of text it may expand to are bounded, so an alias bomb ("billion laughs") is an
//! error, not an exhausted memory. serde_norway bounds nesting (128) and alias jumps;
//! the budget bounds what the jumps build. Merge keys (`<<`) are applied; a duplicate
//! key and a YAML tag (`!reset`) are errors with their line.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// At most this many values (scalars, lists, mappings) in one document.
pub const MAX_NODES: usize = 200_000;
/// At most this many bytes of text (strings and keys) in one document, aliases expanded.
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// At most this deep may `${…}` references nest in one value, as in a project file.
pub const MAX_INTERPOLATION_DEPTH: usize = 32;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A scalar as Compose reads it into a string; `None` for null, a list or a mapping.
    pub fn scalar(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// What the value is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Why a document could not be read: the message and its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// At most this deep (mappings and lists inside each other), as serde_norway's own limit.
pub const MAX_DEPTH: usize = 128;

/// Parse one YAML document.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    // The parser reads a whole flow collection (`[[[[…`) before its depth limit applies,
    // which takes minutes for 100 000 levels: a linear scan refuses it first.
    check_depth(text)?;
    let budget = Budget {
        nodes: Cell::new(0),
        bytes: Cell::new(0),
    };
    let deserializer = serde_norway::Deserializer::from_str(text);
    match (Seed { budget: &budget }).deserialize(deserializer) {
        Ok(node) => Ok(node),
        Err(err) => {
            let (line, col) = err
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let message = err.to_string();
            // serde_norway appends " at line L column C"; the location is shown apart.
            let message = match message.find(" at line ") {
                Some(cut) => message[..cut].to_string(),
                None => message,
            };
            Err(YamlError { message, line, col })
        }
    }
}

/// A linear, conservative estimate of the nesting: block indentation levels, `- ` and
/// `? ` entries opened on one line, and open flow brackets outside quotes and comments.
/// Text of block scalars (`|`, `>`) is skipped. Over [`MAX_DEPTH`] is an error.
fn check_depth(text: &str) -> Result<(), YamlError> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    let mut block_scalar: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(parent) = block_scalar {
            if rest.is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut depth_here = 0;
        let mut body = rest;
        if quote.is_none() && flow == 0 {
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            enter_indent(&mut indents, indent);
            while let Some(after) = body.strip_prefix("- ").or_else(|| body.strip_prefix("? ")) {
                depth_here += 1;
                body = after.trim_start_matches(' ');
            }
        }
        let mut previous = ' ';
        let mut chars = body.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => {
                    if q == '\'' && chars.peek().map(|(_, n)| *n) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                Some(_) => {}
                None => match c {
                    '#' if previous == ' ' || previous == '\t' => break,
                    '"' | '\'' if matches!(previous, ' ' | '[' | '{' | ',' | ':' | '-' | '?') => {
                        quote = Some(c);
                    }
                    '[' | '{' => {
                        flow += 1;
                        let depth = indents.len() + depth_here + flow;
                        if depth > MAX_DEPTH {
                            let col = indent + (body.as_ptr() as usize - rest.as_ptr() as usize);
                            return Err(too_deep(number + 1, col + at + 1));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        if indents.len() + depth_here + flow > MAX_DEPTH {
            return Err(too_deep(number + 1, indent + 1));
        }
        if quote.is_none() && flow == 0 && opens_block_scalar(body) {
            block_scalar = Some(indent);
        }
    }
    Ok(())
}

/// The nesting error at `line` and `col` (both from 1).
fn too_deep(line: usize, col: usize) -> YamlError {
    YamlError {
        message: format!("the document nests deeper than {MAX_DEPTH} levels"),
        line,
        col,
    }
}

/// Close the block levels deeper than `indent` and open `indent` when it is new.
fn enter_indent(indents: &mut Vec<usize>, indent: usize) {
    while indents.last().is_some_and(|top| *top > indent) {
        indents.pop();
    }
    if indents.last() != Some(&indent) {
        indents.push(indent);
    }
}

/// Whether a line (outside quotes and flow) ends with a block scalar indicator (`|`,
/// `>`, with optional chomping and indentation), so the lines under it are text.
fn opens_block_scalar(body: &str) -> bool {
    let trimmed = body.trim_end();
    let trimmed = trimmed.split(" #").next().unwrap_or(trimmed).trim_end();
    let indicator = trimmed
        .rsplit([' ', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '+' || c == '-');
    (indicator == "|" || indicator == ">") && trimmed.len() > 1 || trimmed == "|" || trimmed == ">"
}

struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
}

impl Budget {
    fn node<E: de::Error>(&self) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        if self.nodes.get() > MAX_NODES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_NODES} values (aliases expanded)"
            )));
        }
        Ok(())
    }

    fn text<E: de::Error>(&self, len: usize) -> Result<(), E> {
        self.bytes.set(self.bytes.get() + len);
        if self.bytes.get() > MAX_TEXT_BYTES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_TEXT_BYTES} bytes of text (aliases expanded)"
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.budget.node()?;
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.budget.node()?;
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.budget.node()?;
        Ok(match i64::try_from(v) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::Str(v.to_string()),
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.budget.node()?;
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.budget.node()?;
        self.budget.text(v.len())?;
        if super::text::interpolation_depth(v) > MAX_INTERPOLATION_DEPTH {
            return Err(E::custom(format!(
                "a value nests `${{…}}` more than {MAX_INTERPOLATION_DEPTH} levels deep"
            )));
        }
        if super::text::unclosed_interpolation(v) {
            return Err(E::custom(
                "a value opens `${` without its closing `}`, which Compose refuses: close it, or write `$${` for a literal `${`",
            ));
        }
        Ok(Node::Str(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.budget.node()?;
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.budget.node()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.budget.node()?;
        let mut entries: Vec<(String, Node)> = Vec::new();
        // The keys so far, for the duplicate check: a scan of `entries` per key was
        // quadratic (200,000 keys of one mapping took minutes).
        let mut seen: HashSet<String> = HashSet::new();
        let mut merges: Vec<Node> = Vec::new();
        while let Some(key) = map.next_key_seed(self)? {
            let value = map.next_value_seed(self)?;
            let key = match key {
                Node::Str(s) => s,
                Node::Null => "null".into(),
                other => match other.scalar() {
                    Some(text) => text,
                    None => {
                        return Err(de::Error::custom(format!(
                            "a mapping key must be a scalar, not {}",
                            other.kind()
                        )))
                    }
                },
            };
            if key == "<<" {
                merges.push(value);
                continue;
            }
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            entries.push((key, value));
        }
        // `<<: *a` or `<<: [*a, *b]`: keys written here win, then earlier merges.
        for merge in merges {
            let sources = match merge {
                Node::Seq(items) => items,
                other => vec![other],
            };
            for source in sources {
                let Node::Map(source) = source else {
                    return Err(de::Error::custom(
                        "a merge key `<<` must name a mapping or a list of mappings",
                    ));
                };
                for (key, value) in source {
                    if seen.insert(key.clone()) {
                        entries.push((key, value));
                    }
                }
            }
        }
        Ok(Node::Map(entries))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (tag, _) = data.variant::<String>()?;
        Err(de::Error::custom(format!(
            "the YAML tag `!{tag}` is not supported here"
        )))
    }
}

/// Finds the line of a service or of a key of a service in a Compose file's text, for
/// findings. Block style is found by indentation; a flow mapping (`web: { image: x }`)
/// gives the service's line.
pub struct Locator<'a> {
    lines: Vec<&'a str>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

fn starts_with_key(line: &str, key: &str) -> bool {
    let trimmed = line.trim_start().trim_start_matches("- ");
    [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .any(|k| trimmed.starts_with(k.as_str()))
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// The line of a top-level key.
    pub fn top(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| indent(l) == 0 && starts_with_key(l, key))
            .map(|i| i + 1)
    }

    /// The line of the entry `name` of the top-level mapping `section`.
    pub fn entry(&self, section: &str, name: &str) -> Option<usize> {
        let start = self.top(section)?;
        for (i, line) in self.lines.iter().enumerate().skip(start) {
            if is_content(line) && indent(line) == 0 {
                break;
            }
            if is_content(line) && starts_with_key(line, name) {
                return Some(i + 1);
            }
        }
        // A flow mapping on the section's own line.
        Some(start)
    }

    /// The line of `key` in service `service` (the service's line when not found).
    pub fn service_key(&self, service: &str, key: &str) -> Option<usize> {
        let at = self.entry("services", service)?;
        let own = indent(self.lines[at - 1]);
        if self.lines[at - 1].contains(&format!("{key}:")) && self.lines[at - 1].contains('{') {
            return Some(at);
        }
        // Only the service's own keys: lines at the indentation of its first key.
        let mut child = None;
        for (i, line) in self.lines.iter().enumerate().skip(at) {
            if !is_content(line) {
                continue;
            }
            if indent(line) <= own {
                break;
            }
            let depth = *child.get_or_insert(indent(line));
            if indent(line) == depth && starts_with_key(line, key) {
                return Some(i + 1);
            }
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_merges_and_scalars() {
        let node = parse(
            "x-base: &base\n  restart: always\n  image: a\nservices:\n  web:\n    <<: *base\n    image: b\n    ports: [80, \"443\"]\n",
        )
        .unwrap();
        let web = node.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("image"), Some(&Node::Str("b".into())));
        assert_eq!(web.get("restart"), Some(&Node::Str("always".into())));
        assert_eq!(
            web.get("ports"),
            Some(&Node::Seq(vec![Node::Int(80), Node::Str("443".into())]))
        );
    }

    #[test]
    fn errors_have_lines() {
        let err = parse("services:\n  web:\n    image: [a\n").unwrap_err();
        assert!(err.line >= 3, "{err:?}");
        let err = parse("services:\n  web: {}\n  web: {}\n").unwrap_err();
        assert!(err.message.contains("duplicate key `web`"), "{err:?}");
        let err = parse("services:\n  web:\n    ports: !reset []\n").unwrap_err();
        assert!(err.message.contains("!reset"), "{err:?}");
    }

    /// The duplicate-key check was a scan per key: 20,000 keys took about a minute and
    /// 200,000 (a 3 MB compose file's `environment`) much longer (the hostile matrix's
    /// `env-keys-200k` timed out). One mapping with 90,000 keys is read, and a
    /// duplicate among them is still found.
    #[test]
    fn a_mapping_with_many_keys_is_read_and_a_duplicate_found() {
        let mut text: String = (0..90_000).map(|i| format!("k{i}: v\n")).collect();
        let node = parse(&text).unwrap();
        let Node::Map(entries) = node else {
            panic!("not a mapping")
        };
        assert_eq!(entries.len(), 90_000);
        text.push_str("k45000: again\n");
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("duplicate key `k45000`"), "{err:?}");
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(
            err.message.contains("expands to more than") || err.message.contains("repetition"),
            "{err:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_at_once() {
        let started = std::time::Instant::now();
        let deep = format!(
            "services:\n  web:\n    command: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nests deeper than 128"), "{err:?}");
        assert_eq!(err.line, 3);
        let deep = format!("{}x\n", "- ".repeat(100_000));
        assert!(parse(&deep).unwrap_err().message.contains("nests deeper"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Brackets in quotes, comments and block scalars are text.
        let text = format!(
            "a: \"{b}\"\nb: '{b}'\nc: x # {b}\nd: |\n  {b}\n  {b}\ne: [[1], {{x: [2]}}]\n",
            b = "[".repeat(200)
        );
        assert!(parse(&text).is_ok(), "{:?}", parse(&text));
    }

    #[test]
    fn locates_keys() {
        let text = "services:\n  web:\n    image: a\n    ports:\n      - target: 80\n    target: x\n    container_name: w\n  db: { image: p, container_name: d }\nvolumes:\n  data: {}\n";
        let locator = Locator::new(text);
        assert_eq!(locator.service_key("web", "container_name"), Some(7));
        assert_eq!(locator.service_key("web", "target"), Some(6));
        assert_eq!(locator.service_key("db", "container_name"), Some(8));
        assert_eq!(locator.entry("volumes", "data"), Some(10));
        assert_eq!(locator.top("volumes"), Some(9));
    }
}

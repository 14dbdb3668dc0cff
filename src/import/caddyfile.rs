//! The subset of a Caddyfile that becomes `ROUTE`s: site blocks (`host[, host] { … }`,
//! one-line or not) whose `reverse_proxy service:port` sits at the top of the block or in
//! `handle /path/*` (a path route) or `handle_path /path/*` (a path route that strips its
//! prefix); `reverse_proxy /path/* service:port` too. The global options block gives
//! `email`. Every other directive is listed as not carried, with its line.

/// A route found: host (and path) to a service's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host` or `host/path`, as `ROUTE` writes it.
    pub route: String,
    pub service: String,
    pub port: u16,
    pub strip: bool,
    pub line: usize,
}

/// Where one service is routed: its port, its routes, whether the prefix is stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub port: u16,
    pub routes: Vec<String>,
    pub strip: bool,
}

/// A directive that is not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub routes: Vec<Route>,
    pub email: Option<String>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String, usize),
    Open,
    Close,
    Newline,
}

#[derive(Debug)]
struct Directive {
    words: Vec<String>,
    line: usize,
    block: Option<Vec<Directive>>,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for word in line.split_whitespace() {
            if word.starts_with('#') {
                break;
            }
            match word {
                "{" => out.push(Token::Open),
                "}" => out.push(Token::Close),
                word => out.push(Token::Word(word.to_string(), number + 1)),
            }
        }
        out.push(Token::Newline);
    }
    out
}

/// At most this deep; a deeper block is skipped as a whole.
const MAX_DEPTH: usize = 16;

fn block(tokens: &[Token], at: &mut usize, depth: usize) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut line = 0;
    while *at < tokens.len() {
        let token = tokens[*at].clone();
        *at += 1;
        match token {
            Token::Word(word, number) => {
                if words.is_empty() {
                    line = number;
                }
                words.push(word);
            }
            Token::Newline => {
                if !words.is_empty() {
                    out.push(Directive {
                        words: std::mem::take(&mut words),
                        line,
                        block: None,
                    });
                }
            }
            Token::Open => {
                let inner = if depth < MAX_DEPTH {
                    block(tokens, at, depth + 1)
                } else {
                    Vec::new()
                };
                out.push(Directive {
                    words: std::mem::take(&mut words),
                    line,
                    block: Some(inner),
                });
            }
            Token::Close => {
                if !words.is_empty() {
                    out.push(Directive {
                        words: std::mem::take(&mut words),
                        line,
                        block: None,
                    });
                }
                return out;
            }
        }
    }
    if !words.is_empty() {
        out.push(Directive {
            words,
            line,
            block: None,
        });
    }
    out
}

/// Read a Caddyfile.
pub fn parse(text: &str) -> Parsed {
    let tokens = tokens(text);
    let mut at = 0;
    let mut top = block(&tokens, &mut at, 0);
    let mut parsed = Parsed::default();
    if top.first().is_some_and(|d| d.words.is_empty()) {
        let global = top.remove(0);
        for option in global.block.unwrap_or_default() {
            match option.words.as_slice() {
                [email, address] if email == "email" => parsed.email = Some(address.clone()),
                _ => skip(&mut parsed, &option, "a global option"),
            }
        }
    }
    // A single site may be written without braces: its address, then its directives.
    if top.len() > 1 && top.iter().all(|d| d.block.is_none()) {
        let first = top.remove(0);
        top = vec![Directive {
            words: first.words,
            line: first.line,
            block: Some(top),
        }];
    }
    for site in top {
        let Some(body) = &site.block else {
            skip(&mut parsed, &site, "a line outside a site block");
            continue;
        };
        let hosts: Vec<String> = site
            .words
            .iter()
            .flat_map(|w| w.split(','))
            .filter(|w| !w.is_empty())
            .filter_map(host)
            .collect();
        if hosts.is_empty() {
            skip(
                &mut parsed,
                &site,
                "a site without a host name (`:80`, a wildcard, a snippet)",
            );
            continue;
        }
        site_body(&mut parsed, &hosts, body, None, false);
    }
    parsed
}

fn skip(parsed: &mut Parsed, directive: &Directive, what: &str) {
    let name = directive
        .words
        .first()
        .cloned()
        .unwrap_or_else(|| "{".into());
    parsed.skipped.push(Skipped {
        line: directive.line,
        reason: format!("`{name}`: {what} is not carried; stack writes its own Caddyfile"),
    });
}

fn site_body(
    parsed: &mut Parsed,
    hosts: &[String],
    body: &[Directive],
    path: Option<&str>,
    strip: bool,
) {
    for directive in body {
        let name = directive.words.first().map(String::as_str).unwrap_or("");
        match (name, &directive.block) {
            ("reverse_proxy", _) => {
                let mut args: Vec<&str> = directive.words[1..].iter().map(String::as_str).collect();
                let mut path = path.map(str::to_string);
                if args
                    .first()
                    .is_some_and(|a| a.starts_with('/') || *a == "*")
                {
                    let matcher = args.remove(0);
                    if path.is_some() {
                        skip(parsed, directive, "a matcher inside `handle`");
                        continue;
                    }
                    path = path_of(matcher);
                }
                if args.len() != 1 || directive.block.as_ref().is_some_and(|b| !b.is_empty()) {
                    skip(
                        parsed,
                        directive,
                        "load balancing, a named matcher or options",
                    );
                    continue;
                }
                let Some((service, port)) = upstream(args[0]) else {
                    skip(parsed, directive, "an upstream that is not `service:port`");
                    continue;
                };
                for host in hosts {
                    let route = match &path {
                        Some(path) => format!("{host}{path}"),
                        None => host.clone(),
                    };
                    parsed.routes.push(Route {
                        route,
                        service: service.clone(),
                        port,
                        strip,
                        line: directive.line,
                    });
                }
            }
            ("handle" | "handle_path" | "route", Some(inner)) => {
                if path.is_some() {
                    skip(parsed, directive, "a nested `handle`");
                    continue;
                }
                let inner_path = match directive.words.get(1) {
                    Some(matcher) => match path_of(matcher) {
                        Some(p) => Some(p),
                        None if matcher == "*" => None,
                        None => {
                            skip(parsed, directive, "a named matcher");
                            continue;
                        }
                    },
                    None => None,
                };
                site_body(
                    parsed,
                    hosts,
                    inner,
                    inner_path.as_deref(),
                    name == "handle_path" && inner_path.is_some(),
                );
            }
            _ => skip(parsed, directive, "this directive"),
        }
    }
}

/// `app.example.com`, `https://app.example.com:443` → `app.example.com`.
fn host(address: &str) -> Option<String> {
    let address = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    let address = address.split('/').next().unwrap_or(address);
    let host = address.split(':').next().unwrap_or(address);
    let valid = !host.is_empty()
        && !host.contains(['*', '(', ')', '{', '}'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then(|| host.to_ascii_lowercase())
}

/// `/api/*` or `/api*` → `/api`.
fn path_of(matcher: &str) -> Option<String> {
    let path = matcher.trim_end_matches('*').trim_end_matches('/');
    (matcher.starts_with('/') && !path.is_empty() && !path.contains('*')).then(|| path.to_string())
}

/// `app:8080`, `http://app:8080` → (`app`, 8080); no port is 80.
fn upstream(text: &str) -> Option<(String, u16)> {
    let text = text.strip_prefix("http://").unwrap_or(text);
    if text.contains("://") {
        return None;
    }
    let (name, port) = match text.split_once(':') {
        Some((name, port)) => (name, port.parse().ok()?),
        None => (text, 80),
    };
    (!name.is_empty()).then(|| (name.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otto_one_liner() {
        let parsed = parse("app.icebear.dev { reverse_proxy app:8080 }\n");
        assert_eq!(
            parsed.routes,
            [Route {
                route: "app.icebear.dev".into(),
                service: "app".into(),
                port: 8080,
                strip: false,
                line: 1,
            }]
        );
        assert!(parsed.skipped.is_empty());
    }

    #[test]
    fn blocks_paths_and_skips() {
        let text = "{\n  email ops@example.com\n  debug\n}\nexample.com, www.example.com {\n  encode gzip\n  handle_path /api/* {\n    reverse_proxy api:3000\n  }\n  reverse_proxy web:80\n}\n:8080 {\n  respond ok\n}\n";
        let parsed = parse(text);
        assert_eq!(parsed.email.as_deref(), Some("ops@example.com"));
        let routes: Vec<(String, String, bool)> = parsed
            .routes
            .iter()
            .map(|r| (r.route.clone(), r.service.clone(), r.strip))
            .collect();
        assert_eq!(
            routes,
            [
                ("example.com/api".into(), "api".into(), true),
                ("www.example.com/api".into(), "api".into(), true),
                ("example.com".into(), "web".into(), false),
                ("www.example.com".into(), "web".into(), false),
            ]
        );
        let lines: Vec<usize> = parsed.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 6, 12]);
    }
}

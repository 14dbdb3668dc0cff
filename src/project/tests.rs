//! Unit and property tests of the reader: syntax, layering and interpolation.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::syntax::parse;
use super::{parse_sets, resolve, Layer, SourceKind};

fn layer(name: &str, kind: SourceKind, text: &str) -> Layer {
    Layer {
        kind,
        name: name.into(),
        path: None,
        entries: parse(name, text.as_bytes()).expect("parses"),
    }
}

/// Resolve one file with no built-ins and an empty process environment.
fn values(text: &str) -> BTreeMap<String, String> {
    values_env(text, &[])
}

fn values_env(text: &str, env: &[(&str, &str)]) -> BTreeMap<String, String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let layers = [layer("stack.env", SourceKind::Project, text)];
    let resolved = resolve(&layers, &BTreeMap::new(), |k| env.get(k).cloned()).expect("resolves");
    resolved
        .settings
        .into_iter()
        .map(|(k, s)| (k, s.value))
        .collect()
}

fn error(text: &str) -> String {
    match parse("stack.env", text.as_bytes()) {
        Err(errors) => errors[0].render(),
        Ok(entries) => {
            let layers = [Layer {
                kind: SourceKind::Project,
                name: "stack.env".into(),
                path: None,
                entries,
            }];
            match resolve(&layers, &BTreeMap::new(), |_| None) {
                Err(errors) => errors[0].render(),
                Ok(_) => panic!("expected an error for {text:?}"),
            }
        }
    }
}

#[test]
fn plain_lines_comments_and_export() {
    let v = values("# comment\n\nA=1\nexport B=two words  # trailing\n  C = spaced\nD=a#b\nE=\n");
    assert_eq!(v["A"], "1");
    assert_eq!(v["B"], "two words");
    assert_eq!(v["C"], "spaced");
    assert_eq!(v["D"], "a#b");
    assert_eq!(v["E"], "");
}

#[test]
fn quotes_and_escapes() {
    let v = values("A='lit $X \\n'\nB=\"tab\\there \\\"q\\\" \\\\ \\$X\"\nC=\"multi\nline\"\n");
    assert_eq!(v["A"], "lit $X \\n");
    assert_eq!(v["B"], "tab\there \"q\" \\ $X");
    assert_eq!(v["C"], "multi\nline");
    assert!(values("D='x' # c\n")["D"] == "x");
    assert!(error("D='x' y\n").contains("after the closing quote"));
}

#[test]
fn crlf_line_endings() {
    let v = values("A=1\r\nB=\"x\"\r\nC='y'\r\n");
    assert_eq!(
        (v["A"].as_str(), v["B"].as_str(), v["C"].as_str()),
        ("1", "x", "y")
    );
}

#[test]
fn interpolation_forms() {
    let v = values_env(
        "SET=v\nEMPTY=\nA=$SET\nB=${SET}\nC=${UNSET:-d}\nD=${EMPTY:-d}\nE=${EMPTY-d}\nF=${SET:+alt}\nG=${EMPTY:+alt}\nH=${EMPTY+alt}\nI=$$SET\nJ=${UNSET:-${SET}-x}\nK=${FROM_ENV}\nL=pre${SET}post\n",
        &[("FROM_ENV", "process")],
    );
    assert_eq!(v["A"], "v");
    assert_eq!(v["B"], "v");
    assert_eq!(v["C"], "d");
    assert_eq!(v["D"], "d");
    assert_eq!(v["E"], "");
    assert_eq!(v["F"], "alt");
    assert_eq!(v["G"], "");
    assert_eq!(v["H"], "alt");
    assert_eq!(v["I"], "$SET");
    assert_eq!(v["J"], "v-x");
    assert_eq!(v["K"], "process");
    assert_eq!(v["L"], "prevpost");
}

#[test]
fn project_keys_win_over_process_env() {
    let v = values_env("X=file\nY=${X}\n", &[("X", "env")]);
    assert_eq!(v["Y"], "file");
}

#[test]
fn interpolation_after_merge() {
    let layers = [
        layer(
            "stack.env",
            SourceKind::Project,
            "IMAGE=acme/api:${VERSION}\nVERSION=dev\n",
        ),
        layer(
            "environments/prod/stack.env",
            SourceKind::Overlay,
            "VERSION=1.4.2\n",
        ),
    ];
    let resolved = resolve(&layers, &BTreeMap::new(), |_| None).unwrap();
    assert_eq!(resolved.get("IMAGE"), Some("acme/api:1.4.2"));
    let history = &resolved.settings["VERSION"].history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].location(), "environments/prod/stack.env:1:1");
    assert!(resolved.settings["IMAGE"].refs.contains("VERSION"));
}

#[test]
fn set_flags_parse_like_lines() {
    let layer = parse_sets(&["A=1".into(), "B='x y'".into()]).unwrap();
    assert_eq!(layer.entries.len(), 2);
    assert!(parse_sets(&["nokey".into()]).is_err());
}

#[test]
fn errors_name_line_and_column() {
    let text = error("A=1\nB=\"open\n");
    assert!(text.contains("unterminated double quote"), "{text}");
    assert!(text.contains("stack.env:2:3"), "{text}");
    let text = error("lower=1\n");
    assert!(
        text.contains("invalid key `lower`") && text.contains("`LOWER`"),
        "{text}"
    );
    let text = error("A=${B\n");
    assert!(text.contains("unterminated `${`"), "{text}");
    let text = error("A=cost $5\n");
    assert!(text.contains("lone `$`") && text.contains("$$"), "{text}");
    let text = error("A=${B:?is required}\n");
    assert!(
        text.contains("`B` must be set: is required") && text.contains("stack.env:1:3"),
        "{text}"
    );
    let text = error("NOEQUALS\n");
    assert!(text.contains("expected `=`"), "{text}");
}

#[test]
fn cycles_are_errors() {
    let text = error("A=${B}\nB=${C}\nC=$A\n");
    assert!(
        text.contains("interpolation cycle: `A` → `B` → `C` → `A`"),
        "{text}"
    );
    let text = error("A=${A:-x}\n");
    assert!(text.contains("cycle"), "{text}");
}

#[test]
fn invalid_utf8_is_an_error() {
    let errors = parse("stack.env", b"A=1\nB=\xff\xfe\n").unwrap_err();
    assert!(errors[0].render().contains("stack.env:2:3"));
}

#[test]
fn deep_nesting_is_bounded() {
    let mut text = String::from("A=");
    for _ in 0..10_000 {
        text.push_str("${X:-");
    }
    assert!(parse("stack.env", text.as_bytes()).is_err());
    let chain: String = (0..500)
        .map(|i| format!("K{i}=${{K{}}}\n", i + 1))
        .collect();
    let errors = parse("stack.env", chain.as_bytes()).map(|entries| {
        let layers = [Layer {
            kind: SourceKind::Project,
            name: "stack.env".into(),
            path: None,
            entries,
        }];
        resolve(&layers, &BTreeMap::new(), |_| None)
    });
    assert!(matches!(errors, Ok(Err(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The writer's literal form of any value (every printable character, line breaks,
    /// tabs, `$`, `${…}`, quotes, backslashes) reads back exactly, interpolation and all.
    #[test]
    fn the_writer_s_literal_reads_back_exactly(value in "(\\PC|[\n\r\t$'\"\\\\{}])*") {
        let text = format!("K={}\n", super::writer::literal(&value));
        prop_assert_eq!(&values(&text)["K"], &value, "written as {}", text);
    }

    /// A template (interpolation kept) with no `$` reads back exactly too, and one whose
    /// variables are set reads back with them substituted.
    #[test]
    fn the_writer_s_template_reads_back(value in "(\\PC|[\n\r\t'\"\\\\])*") {
        let value: String = value.chars().filter(|c| *c != '$').collect();
        let text = format!("K={}\n", super::writer::template(&value));
        prop_assert_eq!(&values(&text)["K"], &value, "written as {}", text);
        let text = format!("V=x\nK={}\n", super::writer::template(&format!("{value}${{V}}")));
        prop_assert_eq!(&values(&text)["K"], &format!("{value}x"), "written as {}", text);
    }

    /// Any bytes: an answer, never a panic.
    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(entries) = parse("stack.env", &bytes) {
            let layers = [Layer { kind: SourceKind::Project, name: "stack.env".into(), path: None, entries }];
            let _ = resolve(&layers, &BTreeMap::new(), |_| None);
        }
    }

    /// Text made of the syntax's own characters, where bugs hide.
    #[test]
    fn never_panics_on_syntax_soup(text in "[A-Z_=$'\"{}:?+#\\\\ \\n\\r\\t-]{0,200}") {
        if let Ok(entries) = parse("stack.env", text.as_bytes()) {
            let layers = [Layer { kind: SourceKind::Project, name: "stack.env".into(), path: None, entries }];
            let _ = resolve(&layers, &BTreeMap::new(), |_| None);
        }
    }

    /// A single-quoted value round-trips exactly.
    #[test]
    fn single_quoted_round_trip(value in "[^'\\r]{0,80}") {
        let text = format!("K='{value}'\n");
        let v = values(&text);
        prop_assert_eq!(&v["K"], &value);
    }

    /// A double-quoted value written with escapes round-trips exactly.
    #[test]
    fn double_quoted_round_trip(value in "[ -~\\n\\t]{0,80}") {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('\n', "\\n")
            .replace('\t', "\\t");
        let v = values(&format!("K=\"{escaped}\"\n"));
        prop_assert_eq!(&v["K"], &value);
    }
}

fn resolve_errors(text: &str) -> Vec<crate::error::Diagnostic> {
    let layers = [layer("stack.env", SourceKind::Project, text)];
    match resolve(&layers, &BTreeMap::new(), |_| None) {
        Ok(_) => panic!("resolved:\n{text}"),
        Err(errors) => errors,
    }
}

#[test]
fn doubling_values_stop_at_the_value_bound_naming_the_key() {
    let mut text = String::from("A0=xxxxxxxxxxxxxxxx\n");
    for i in 1..40 {
        text.push_str(&format!("A{i}=$A{}$A{}\n", i - 1, i - 1));
    }
    let errors = resolve_errors(&text);
    // 16 bytes doubled 16 times is 1 MiB; the 17th doubling is too long.
    let first = errors[0].render();
    assert!(first.contains("`A17` is longer than"), "{first}");
    assert!(first.contains("--> stack.env:18:1"), "{first}");
}

#[test]
fn many_large_values_stop_at_the_project_bound() {
    let mut text = String::from("A0=xxxxxxxxxxxxxxxx\n");
    for i in 1..=15 {
        text.push_str(&format!("A{i}=$A{}$A{}\n", i - 1, i - 1));
    }
    // A0..A15 make 1 MiB and each copy half a MiB: the 30th copy passes 16 MiB.
    for i in 0..100 {
        text.push_str(&format!("COPY{i}=$A15\n"));
    }
    let errors = resolve_errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].render();
    assert!(text.contains("larger than"), "{text}");
    assert!(text.contains("at `COPY29`"), "{text}");
}

#[test]
fn a_key_referenced_many_times_stays_bounded() {
    let many = "$B".repeat(40_000);
    let text =
        format!("B=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nA={many}\n");
    let errors = resolve_errors(&text);
    let first = errors[0].render();
    assert!(first.contains("`A` is longer than"), "{first}");
}

#[test]
fn a_file_holds_a_bounded_number_of_entries_and_references() {
    let refs = format!("B=x\nA={}\n", "$B".repeat(300_000));
    let text = error(&refs);
    assert!(text.contains("more than 50000 `$` references"), "{text}");
    let keys: String = (0..20_000).map(|i| format!("K{i}=v\n")).collect();
    let text = error(&keys);
    assert!(text.contains("more than 10000 assignments"), "{text}");
    assert!(text.contains("--> stack.env:10001:1"), "{text}");
}

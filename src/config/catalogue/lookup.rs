//! Reading the key catalogue ([`super`]): every name, one row by name, and
//! the README's tables. Apart from the table itself so the table can grow.

use super::{Key, ATTRIBUTES, GLOBALS};

/// Every global key's name.
pub fn global_names() -> impl Iterator<Item = &'static str> {
    GLOBALS.iter().flat_map(|k| k.names.iter().copied())
}

/// Every service attribute's name, without the patterns (`ENV_<VAR>`, `BUILD_ARG_<NAME>`).
pub fn attribute_names() -> impl Iterator<Item = &'static str> {
    ATTRIBUTES
        .iter()
        .flat_map(|k| k.names.iter().copied())
        .filter(|n| !n.contains('<'))
}

/// The catalogue row of a global key or service attribute.
pub fn find(name: &str) -> Option<&'static Key> {
    GLOBALS
        .iter()
        .chain(ATTRIBUTES)
        .find(|k| k.names.contains(&name))
}

/// The README's Markdown table of `keys`.
pub fn markdown(keys: &[Key], attributes: bool) -> String {
    let mut out = if attributes {
        String::from("| attribute | meaning | default | honoured by |\n|---|---|---|---|\n")
    } else {
        String::from("| key | meaning | default |\n|---|---|---|\n")
    };
    for key in keys {
        let names: Vec<String> = key.names.iter().map(|n| format!("`{n}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} |",
            names.join(", "),
            key.meaning,
            key.default
        ));
        if attributes {
            out.push_str(&format!(" {} |", key.targets));
        }
        out.push('\n');
    }
    out
}

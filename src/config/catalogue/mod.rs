//! The key catalogue: every global key and service attribute of the project file,
//! defined once — its names, one line of meaning, its default, and (for a service
//! attribute) which targets honour it and whether only a container can have it. The
//! configuration reader, `config explain` and the README's tables (generated from here: a
//! test fails when the README drifts, and prints the table to paste) use it.

/// One row of the catalogue: names that share one meaning (`HEALTH_INTERVAL`, …).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub names: &'static [&'static str],
    pub meaning: &'static str,
    pub default: &'static str,
    /// Who honours a service attribute: `compose` (the rendered file), `engine` (stack's
    /// own containers), `swarm`, `build`, `proxy`, `monitoring`, `stack` (the tool).
    pub targets: &'static str,
    /// Only a container has it: a service with `UPSTREAM` (no container) cannot.
    pub container: bool,
}

mod attributes;
mod globals;
mod lookup;

pub use attributes::ATTRIBUTES;
pub use globals::GLOBALS;
pub use lookup::{attribute_names, find, global_names, markdown};

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's tables are generated from the catalogue: when this fails, paste the
    /// table it prints into README.md.
    #[test]
    fn the_readme_tables_are_the_catalogue() {
        let readme = include_str!("../../../README.md");
        for (table, what) in [
            (markdown(GLOBALS, false), "global keys"),
            (markdown(ATTRIBUTES, true), "service attributes"),
        ] {
            assert!(
                readme.contains(&table),
                "README.md's table of {what} differs from src/config/catalogue.rs; \
                 replace it with:\n{table}"
            );
        }
    }

    #[test]
    fn every_name_is_defined_once() {
        let mut names: Vec<&str> = GLOBALS
            .iter()
            .chain(ATTRIBUTES)
            .flat_map(|k| k.names.iter().copied())
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}

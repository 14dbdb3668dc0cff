//! Embeds every template under `templates/` into the binary: the list is the directory,
//! so a new template cannot be forgotten.

fn main() {
    minijinja_embed::embed_templates!("templates", &[".j2"][..]);
}

//! `stack completions SHELL`, and the hidden `stack __man DIR`: what is generated from
//! the command-line definition itself, so it cannot drift from `--help`.

use std::path::Path;

use clap::CommandFactory;

use super::Context;
use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, Result};

pub fn run(context: &Context, args: &CompletionsArgs) -> Result<()> {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "stack", &mut buffer);
    context.printer.out(String::from_utf8_lossy(&buffer));
    Ok(())
}

/// Write `stack.1` and one `stack-<command>[-<sub>].1` per visible subcommand to DIR
/// (created when missing); prints the files written on stdout.
pub fn man(context: &Context, args: &ManArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Error::io("create the directory", &args.dir, e))?;
    let mut command = Cli::command();
    command.build();
    let mut written = Vec::new();
    write_pages(&args.dir, command, "stack", &mut written)?;
    for path in written {
        context.printer.out(format!("{}\n", path));
    }
    Ok(())
}

/// The page of `command`, named `name`, then those of its visible subcommands.
fn write_pages(
    dir: &Path,
    command: clap::Command,
    name: &str,
    out: &mut Vec<String>,
) -> Result<()> {
    let command = command
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buffer = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut buffer)
        .map_err(|e| Error::outside(format!("cannot render the man page of `{name}`: {e}")))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buffer).map_err(|e| Error::io("write", &path, e))?;
    out.push(path.display().to_string());
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, out)?;
    }
    Ok(())
}

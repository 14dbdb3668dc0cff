//! `stack completions SHELL`.

use clap::CommandFactory;

use super::Context;
use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;

pub fn run(context: &Context, args: &CompletionsArgs) -> Result<()> {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "stack", &mut buffer);
    context.printer.out(String::from_utf8_lossy(&buffer));
    Ok(())
}

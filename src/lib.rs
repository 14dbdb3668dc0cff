//! `stack`: render, run and deploy a single-VM Docker Compose stack from one project file.
//!
//! Data flows one way: `cli` → `project` (read) → `config` (validate) → `render`
//! (pure) → `commands` (glue) → `fsio` / `printer` (the outside world).

pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod import;
pub mod model;
pub mod notify;
pub mod plan;
pub mod printer;
pub mod project;
pub mod render;
pub mod schedule;

use clap::Parser;

use cli::{Cli, Command};
use commands::Context;
use error::exit;

/// Run the command line; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::BAD_INPUT,
            };
        }
    };
    let context = Context::new(cli.global.clone());
    let result = match &cli.command {
        Command::Init(args) => commands::init::run(&context, args),
        Command::Build(args) => commands::build::run(&context, args),
        Command::Config(args) => commands::config::run(&context, args),
        Command::Secrets(command) => commands::secrets::run(&context, command),
        Command::Check(args) => commands::check::run(&context, args),
        Command::Completions(args) => commands::completions::run(&context, args),
        Command::Doctor(args) => commands::doctor::run(&context, args),
        Command::Man(args) => commands::completions::man(&context, args),
        Command::Start(args) => commands::start::run(&context, args),
        Command::Stop(args) => commands::lifecycle::stop(&context, args),
        Command::Restart(args) => commands::lifecycle::restart(&context, args),
        Command::Down(args) => commands::lifecycle::down(&context, args),
        Command::Status(args) => commands::status::status(&context, &args.on),
        Command::Health(args) => commands::status::health(&context, &args.on),
        Command::Logs(args) => commands::logs::run(&context, args),
        Command::Exec(args) => commands::exec::exec(&context, args),
        Command::Run(args) => commands::exec::run(&context, args),
        Command::Deploy(args) => commands::deploy::deploy(&context, args),
        Command::Preview(command) => commands::deploy::preview(&context, command),
        Command::Releases(args) => commands::deploy::releases(&context, args),
        Command::Rollback(args) => commands::deploy::rollback(&context, args),
        Command::Lock(cli::LockCommand::Release(args)) => {
            commands::deploy::lock_release(&context, args)
        }
        Command::Audit(args) => commands::deploy::audit(&context, args),
        Command::Maintenance(args) => commands::maintenance::run(&context, args),
        Command::Server(cli::ServerCommand::Setup(args)) => commands::server::setup(&context, args),
        Command::Backup(command) => commands::backup::run(&context, command),
        Command::Jobs(args) => commands::jobs::run(&context, args),
        Command::Supervise(args) => commands::supervise::run(&context, args),
        Command::Import(command) => commands::import::run(&context, command),
    };
    match result {
        Ok(()) => exit::OK,
        Err(err) => {
            context.printer.error(&err.render());
            err.exit_code()
        }
    }
}

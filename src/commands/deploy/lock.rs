//! `stack lock release ENV`: free a stale deploy lock.

use super::super::{runtime, server_of, Context};
use crate::cli::EnvArg;
use crate::deploy::Remote;
use crate::error::Result;
use crate::notify::Event;

pub fn lock_release(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    match remote.lock_holder()? {
        None => context
            .printer
            .status(format!("the lock of `{env}` is free")),
        Some(holder) => {
            remote.unlock()?;
            remote.audit(
                "lock-release",
                "-",
                &format!("freed a lock held by {holder}"),
            )?;
            context
                .printer
                .status(format!("freed the lock of `{env}` (was: {holder})"));
            let event = Event::LockReleased { holder };
            runtime()?.block_on(super::super::notifier(context, &loaded.config).send(event));
        }
    }
    Ok(())
}

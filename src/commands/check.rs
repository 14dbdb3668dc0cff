//! `stack check ENV`: the production audit (SPEC §3); the findings come from
//! [`crate::audit`].

use super::{report, Context};
use crate::cli::EnvArg;
use crate::error::Result;

pub fn run(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load_secrets(&env)?;
    let findings = crate::audit::audit(&loaded);
    report(context, &env, "audit", &findings)
}

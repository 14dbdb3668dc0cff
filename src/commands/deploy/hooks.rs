//! The project's deploy hooks (`STACK_HOOK_PRE_DEPLOY`, `STACK_HOOK_POST_DEPLOY`), run on this machine
//! around a deploy and recorded in the server's audit log.

use super::first_line;
use crate::commands::Context;
use crate::deploy::Remote;
use crate::error::{Diagnostic, Error, Result};

/// Before the lock: a failing pre-deploy hook changes nothing on the server. Audited.
pub(super) fn pre_deploy_hook(
    context: &Context,
    config: &crate::config::Config,
    remote: &Remote,
    id: &str,
) -> Result<()> {
    let Some(command) = &config.hooks.pre_deploy else {
        return Ok(());
    };
    let hook = super::super::Hook {
        name: "pre-deploy",
        command,
        release: id,
    };
    let result = super::super::run_hook(context, config, &hook);
    let outcome = match &result {
        Ok(()) => "pre-deploy ok".to_string(),
        Err(e) => format!("pre-deploy failed: {}; nothing was deployed", first_line(e)),
    };
    let _ = remote.audit("hook", id, &outcome);
    result.map_err(|e| {
        Error::No(format!(
            "{}; nothing was deployed",
            e.render().trim_start_matches("error: ").trim_end()
        ))
    })
}

/// The release is live: a failing post-deploy hook is reported, not rolled back. Audited.
pub(super) fn post_deploy_hook(
    context: &Context,
    config: &crate::config::Config,
    remote: &Remote,
    id: &str,
) {
    let Some(command) = &config.hooks.post_deploy else {
        return;
    };
    let hook = super::super::Hook {
        name: "post-deploy",
        command,
        release: id,
    };
    let outcome = match super::super::run_hook(context, config, &hook) {
        Ok(()) => "post-deploy ok".to_string(),
        Err(e) => {
            let first = first_line(&e);
            context.printer.warn(&Diagnostic::new(format!(
                "{first}; the release stays deployed"
            )));
            format!("post-deploy failed: {first}")
        }
    };
    let _ = remote.audit("hook", id, &outcome);
}

//! The BACKUP preset's files, mounted into the `backup` service at
//! `/etc/stack-backup`: the script and the crontab busybox `crond` runs it from.

use minijinja::context;

use super::{header, render_template, Bundle};
use crate::config::Config;
use crate::error::Result;

pub const SCRIPT_FILE: &str = "backup/backup.sh";
pub const CRONTAB_FILE: &str = "backup/crontab";

pub fn render(config: &Config, bundle: &mut Bundle) -> Result<()> {
    let Some(service) = config
        .services
        .iter()
        .find(|s| s.name == "backup" && s.preset == Some("BACKUP"))
    else {
        return Ok(());
    };
    let header = header(config);
    let env = |name: &str| {
        service
            .env
            .get(name)
            .filter(|v| !v.secret)
            .map(|v| v.value.clone())
    };
    let schedule = crate::config::presets::cron_schedule(
        &env("BACKUP_SCHEDULE").unwrap_or_else(|| "0 3 * * *".into()),
    );
    let target = env("BACKUP_TARGET").unwrap_or_default();
    let target_note = if target.starts_with("s3://") {
        format!("volume backup-data, mirrored to {target} by the backup-s3 service")
    } else {
        format!("bind-mounted from {target}")
    };
    bundle.add_executable(
        SCRIPT_FILE,
        render_template(
            "backup/backup.sh.j2",
            context! { header => &header, target_note => target_note },
        )?,
    );
    bundle.add(
        CRONTAB_FILE,
        render_template(
            "backup/crontab.j2",
            context! { header => &header, schedule => schedule.split_whitespace().collect::<Vec<_>>().join(" ") },
        )?,
    );
    Ok(())
}

//! The BACKUP preset's script, mounted into the `backup` (and `backup-offsite`) service at
//! `/etc/stack-backup`. The same text is what `stack backup` runs in one-off containers:
//! the steps are defined once, in `templates/backup/backup.sh.j2`.

use minijinja::context;

use super::{header, render_template, Bundle};
use crate::error::Result;
use crate::model::Desired;

pub const SCRIPT_FILE: &str = "backup/backup.sh";

/// The script with `header` as its first comment.
pub fn script(header: &str) -> Result<String> {
    render_template("backup/backup.sh.j2", context! { header => header })
}

pub fn render(desired: &Desired, bundle: &mut Bundle) -> Result<()> {
    if desired.backup.is_some() {
        bundle.add_executable(SCRIPT_FILE, script(&header(desired))?);
    }
    Ok(())
}

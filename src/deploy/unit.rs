//! The systemd unit `<project>.service` and the server's `stack` binary.

use super::answer::{UnitAnswer, SHELL};
use super::ssh::quote;
use super::{setup, Remote};
use crate::error::{Error, Result};

impl Remote {
    /// The unit file `<project>.service` that the server has and stack did not write (a
    /// system unit of that name, or one written by hand), which a deploy must not shadow.
    pub fn foreign_unit(&self, project: &str) -> Result<Option<String>> {
        let script = format!(
            "{SHELL} [ -d /run/systemd/system ] || exit 0; name={name}; dest=/etc/systemd/system/$name; \
             if [ -e \"$dest\" ] && ! grep -q {marker} \"$dest\"; then A unit state=foreign \"path=$dest\"; exit 0; fi; \
             frag=$(systemctl show -p FragmentPath --value \"$name\" 2>/dev/null); \
             if [ -n \"$frag\" ] && [ \"$frag\" != \"$dest\" ]; then A unit state=foreign \"path=$frag\"; fi",
            name = quote(&format!("{project}.service")),
            marker = quote(UNIT_MARKER),
        );
        let text = self.session.check("look for the unit", &script, None)?;
        Ok(match UnitAnswer::of(&text)? {
            Some(UnitAnswer::Foreign { path }) => Some(path),
            _ => None,
        })
    }

    /// Install the unit of release `release` and enable it, install this binary as
    /// `SERVER_PATH/bin/stack` (the deploy user's, no sudo) when the server's OS and
    /// architecture match, then start the unit (or reload it, so a running `supervise`
    /// takes the new release and binary without touching the containers). As root the
    /// unit is installed directly; another user goes through the root helper `stack server
    /// setup` wrote (`sudo -n`), or, without one, plain `sudo -n` (an admin's own rules). A
    /// server without systemd or root gets a note, not a failure.
    pub fn install_unit(&self, project: &str, release: &str) -> Result<Option<String>> {
        let unit = format!("{}/{project}.service", self.release_dir(release));
        let script = format!(
            "{SHELL} [ -d /run/systemd/system ] || {{ A unit state=none; exit 0; }}; \
             {as_root} name={name}; dest=/etc/systemd/system/$name; \
             if [ -e \"$dest\" ] && ! grep -q {marker} \"$dest\"; then A unit state=foreign \"path=$dest\"; exit 0; fi; \
             if [ -n \"$H\" ]; then cmp -s {unit} \"$dest\" || $H install-unit {release}; \
             else cmp -s {unit} \"$dest\" || {{ $S install -m 0644 {unit} \"$dest\" && $S systemctl daemon-reload; }}; fi \
             && {{ if [ -n \"$H\" ]; then $H enable; else $S systemctl enable \"$name\"; fi; }} >/dev/null || exit 1; \
             A unit state=installed \"uname=$(uname -sm)\" \"sum=$(sha256sum {binary} 2>/dev/null || echo none)\"",
            as_root = reach_root(project),
            unit = quote(&unit),
            release = quote(release),
            name = quote(&format!("{project}.service")),
            marker = quote(UNIT_MARKER),
            binary = quote(&crate::render::server_binary(&self.server.path)),
        );
        let output = self.session.run(&script, None)?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let answer = match output.status.success() {
            true => UnitAnswer::of(&text)?,
            false => None,
        };
        let (uname, remote_sum) = match answer {
            Some(UnitAnswer::Installed { uname, sum }) => (uname.to_ascii_lowercase(), sum),
            Some(UnitAnswer::NoSystemd) => {
                return Ok(Some(
                    "the server has no systemd; the unit was not installed".into(),
                ))
            }
            Some(UnitAnswer::Foreign { path }) => {
                return Ok(Some(format!(
                    "`{path}` was not written by stack, so it was left alone and the stack will not come back after a reboot; rename `STACK_PROJECT`"
                )))
            }
            None => {
                return Ok(Some(format!(
                    "could not install the systemd unit (needs root, the root helper of `stack server setup` or passwordless sudo): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )))
            }
        };
        let arch = std::env::consts::ARCH;
        if !(uname.starts_with(std::env::consts::OS) && uname.ends_with(arch)) {
            return Ok(Some(format!(
                "the server is `{uname}` and this stack is {}/{arch}: install a matching stack binary at {} for `stack supervise`; the unit is enabled but not started",
                std::env::consts::OS,
                crate::render::server_binary(&self.server.path)
            )));
        }
        let binary = std::env::current_exe()
            .and_then(std::fs::read)
            .map_err(|e| Error::outside(format!("cannot read this stack binary: {e}")))?;
        if !remote_sum.starts_with(&sha256_hex(&binary)) {
            // The unit runs it as the deploy user, who owns it: no sudo.
            let install = format!(
                "b={b}; mkdir -p \"${{b%/*}}\" && cat > \"$b.new\" && chmod 755 \"$b.new\" && mv -f \"$b.new\" \"$b\"",
                b = quote(&crate::render::server_binary(&self.server.path))
            );
            self.session
                .check("install the stack binary", &install, Some(&binary))?;
        }
        // `start` waits for supervise's READY (its converge finds nothing to do);
        // `reload` makes a running supervise re-execute itself.
        let start = format!(
            "{as_root} name={name}; if systemctl is-active -q \"$name\"; then c=reload; else c=start; fi; \
             if [ -n \"$H\" ]; then $H $c; else $S systemctl $c \"$name\"; fi \
             || {{ systemctl status --no-pager -n 20 \"$name\" >&2; exit 1; }}",
            as_root = reach_root(project),
            name = quote(&format!("{project}.service")),
        );
        let output = self.session.run(&start, None)?;
        if !output.status.success() {
            return Ok(Some(format!(
                "the unit `{project}.service` did not start: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(None)
    }
}

/// The first words of every unit stack writes (the bundle's header).
const UNIT_MARKER: &str = "# Generated by stack ";

/// How a script reaches root: `H`, `project`'s root helper through `sudo -n` when the
/// user is not root and `stack server setup` wrote one, else `S`: nothing for root,
/// `sudo -n` for another user.
fn reach_root(project: &str) -> String {
    format!(
        "S=; H=; if [ \"$(id -u)\" != 0 ]; then S='sudo -n'; [ -x {helper} ] && H=\"sudo -n \"{helper}; fi;",
        helper = quote(&setup::root_helper_path(project))
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

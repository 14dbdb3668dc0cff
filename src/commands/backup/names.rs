//! The names of dumps and volume archives, and how `list` shows times and sizes.

use crate::error::{Diagnostic, Result};

/// `dump-2026-12-01T030000Z.dump` (or `safety-…`): the names `list` shows.
pub(super) fn check_name(name: &str) -> Result<()> {
    if dump_time(name).is_some() {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "`{}` is not a dump name",
        crate::printer::escape(name)
    ))
    .hint("name a dump as `stack backup list` shows it, e.g. `dump-2026-12-01T030000Z.dump`")
    .into())
}

/// The UTC time in a dump's name, as Unix seconds.
pub(super) fn dump_time(name: &str) -> Option<i64> {
    let stamp = name
        .strip_prefix("dump-")
        .or_else(|| name.strip_prefix("safety-"))?
        .strip_suffix(".dump")?;
    stamp_time(stamp)
}

/// `volume-uploads-2026-12-01T030000Z.tar.gz` (or `safety-volume-…`): the volume and the
/// UTC time of a volume archive's name.
pub(super) fn archive_parts(name: &str) -> Option<(&str, i64)> {
    let rest = name
        .strip_prefix("volume-")
        .or_else(|| name.strip_prefix("safety-volume-"))?
        .strip_suffix(".tar.gz")?;
    let split = rest.len().checked_sub(19)?;
    let (volume, stamp) = (rest.get(..split)?, rest.get(split..)?);
    let stamp = stamp.strip_prefix('-')?;
    let first = volume.chars().next()?;
    let valid = first.is_ascii_alphanumeric()
        && volume
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    Some((volume, stamp_time(stamp)?)).filter(|_| valid)
}

/// A dump's or a volume archive's time.
pub(super) fn entry_time(name: &str) -> Option<i64> {
    dump_time(name).or_else(|| archive_parts(name).map(|(_, time)| time))
}

/// A volume archive of `volume`, as `list` names it.
pub(super) fn check_archive(name: &str, volume: &str) -> Result<()> {
    if archive_parts(name).is_some_and(|(v, _)| v == volume) {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "`{}` is not an archive of volume `{volume}`",
        crate::printer::escape(name)
    ))
    .hint(format!("name an archive as `stack backup list` shows it, e.g. `volume-{volume}-2026-12-01T030000Z.tar.gz`"))
    .into())
}

/// `2026-12-01T030405Z` as Unix seconds.
fn stamp_time(stamp: &str) -> Option<i64> {
    let bytes = stamp.as_bytes();
    if bytes.len() != 18 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    if bytes[17] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &stamp[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(13..15)?, number(15..17)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn human_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

pub(super) fn human_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub(super) fn iso(time: i64) -> String {
    let stamp = crate::deploy::timestamp_of(time.max(0) as u64);
    // 20261201T030000Z → 2026-12-01 03:00:00Z
    format!(
        "{}-{}-{} {}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_carry_their_time() {
        assert_eq!(dump_time("dump-1970-01-01T000000Z.dump"), Some(0));
        assert_eq!(
            dump_time("dump-2026-12-01T030405Z.dump"),
            Some(1_796_094_245)
        );
        assert_eq!(
            dump_time("safety-2000-03-01T000000Z.dump"),
            Some(951_868_800)
        );
        for bad in [
            "dump-2026-12-01T030405Z.dump.manifest.json",
            "../dump-2026-12-01T030405Z.dump",
            "dump-2026-13-01T030405Z.dump",
            "dump-2026-12-01 030405Z.dump",
            "dump-+026-12-01T030405Z.dump",
            "",
        ] {
            assert_eq!(dump_time(bad), None, "{bad}");
        }
        assert_eq!(iso(1_796_094_245), "2026-12-01 03:04:05Z");
        assert_eq!(
            archive_parts("volume-app-uploads-2026-12-01T030405Z.tar.gz"),
            Some(("app-uploads", 1_796_094_245))
        );
        assert_eq!(
            archive_parts("safety-volume-u-2026-12-01T030405Z.tar.gz"),
            Some(("u", 1_796_094_245))
        );
        for bad in [
            "volume--2026-12-01T030405Z.tar.gz",
            "volume-../x-2026-12-01T030405Z.tar.gz",
            "volume-u-2026-12-01T030405Z.tar",
            "volume-2026-12-01T030405Z.tar.gz",
        ] {
            assert_eq!(archive_parts(bad), None, "{bad}");
        }
    }
}

//! RFC 3339 timestamps (UTC, nanoseconds) for flows, as Hubble prints `time`.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-12-05T20:31:07.123456789Z` for `t`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        let at = |s: u64, ns: u32| rfc3339(UNIX_EPOCH + Duration::new(s, ns));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        // `date -u -d @951782400` = 2000-02-29 00:00:00 (a leap day of a century year).
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        // `date -u -d @1796502667` = 2026-12-05 20:31:07.
        assert_eq!(
            at(1_796_502_667, 123_456_789),
            "2026-12-05T20:31:07.123456789Z"
        );
        assert_eq!(at(4_102_444_799, 0), "2099-12-31T23:59:59.000000000Z");
    }
}

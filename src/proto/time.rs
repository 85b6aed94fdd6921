//! Dates as SIP and its bodies print them: RFC 1123 for the Date header
//! (RFC 3261 §20.17) and RFC 3339 for CPIM DateTime and PIDF timestamps.
//! Pure functions of Unix seconds: the clock is read elsewhere.

/// The civil date and time of Unix seconds: (year, month, day, hour,
/// minute, second, days since the epoch).
fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        days,
    )
}

/// An RFC 1123 date (`Date` header, RFC 3261 §20.17).
pub fn http_date(secs: u64) -> String {
    let (year, month, day, h, m, s, days) = civil(secs);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        months[(month - 1) as usize],
    )
}

/// An RFC 3339 timestamp in UTC (CPIM DateTime, PIDF timestamp).
pub fn rfc3339(secs: u64) -> String {
    let (year, month, day, h, m, s, _) = civil(secs);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

pub use parley_adapter::time::parse_time;

#[cfg(test)]
mod tests {
    use super::{http_date, rfc3339};

    #[test]
    fn dates_print_as_rfc1123_and_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}

//! Dates as SIP and its bodies print them: RFC 1123 for the Date header
//! (RFC 3261 §20.17) and RFC 3339 for CPIM DateTime and PIDF timestamps.
//! Pure functions of Unix seconds (the clock is read elsewhere), on the
//! `time` crate's calendar and formats.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// The moment of Unix seconds (a time past what the calendar holds
/// prints as the last moment it does).
fn at(secs: u64) -> OffsetDateTime {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or_else(|_| time::PrimitiveDateTime::MAX.assume_utc())
}

/// An RFC 1123 date (`Date` header, RFC 3261 §20.17).
pub fn http_date(secs: u64) -> String {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at(secs).format(format).unwrap_or_default()
}

/// An RFC 3339 timestamp in UTC (CPIM DateTime, PIDF timestamp).
pub fn rfc3339(secs: u64) -> String {
    at(secs).format(&Rfc3339).unwrap_or_default()
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

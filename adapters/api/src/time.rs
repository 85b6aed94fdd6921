//! Times as the networks write them, read as Unix seconds. Pure
//! functions: the clock is read elsewhere.

/// A time for archive searches: Unix seconds, or an RFC 3339 date-time
/// (`2026-11-26T10:00:00Z`, `2011-10-19T16:40:51.620+02:00`; fractions of
/// a second dropped), or a date or a date and time without an offset,
/// read as UTC (`2026-11-26`, `2026-11-26T10:00`).
pub fn parse_time(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let date = format_description!("[year]-[month]-[day]");
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let utc = |t: time::PrimitiveDateTime| Some(t.assume_utc().unix_timestamp());
    if let Ok(d) = time::Date::parse(s, date) {
        return utc(d.midnight());
    }
    for format in [seconds, minutes] {
        if let Ok(t) = time::PrimitiveDateTime::parse(s, format) {
            return utc(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_read_as_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2026-11-26T10:00:00Z"), Some(1_795_687_200));
        assert_eq!(parse_time("2000-03-01T00:00"), Some(951_868_800));
        assert_eq!(parse_time("2011-10-19T16:40:51.620Z"), Some(1_319_042_451));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-01"), None);
    }
}

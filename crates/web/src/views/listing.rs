//! What the promotion history and the audit log share: date filters,
//! keyset cursors, pages, and exports as CSV or JSON.

use super::url_encode;
use crate::error::{AppError, AppResult};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use stagehand_domain::PromotionStatus;

/// Rows per page on screen.
pub(crate) const PAGE: i64 = 50;
/// Most rows one export returns; the JSON export carries a cursor to
/// continue from.
pub(crate) const MAX_EXPORT: i64 = 1000;

/// A free-text filter (an actor, an event kind): at most 200 characters,
/// none of them control characters (PostgreSQL refuses NUL outright).
pub(crate) fn text_filter(raw: Option<&str>, field: &'static str) -> AppResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() <= 200 && !s.chars().any(char::is_control) => {
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err(AppError::invalid(
            field,
            "must be at most 200 printable characters",
        )),
    }
}

/// An optional id filter: blank is absent, anything else must be an id.
pub(crate) fn id_filter(raw: Option<&str>, field: &'static str) -> AppResult<Option<uuid::Uuid>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| AppError::invalid(field, "is not an id"))
        })
        .transpose()
}

/// An optional promotion status filter.
pub(crate) fn status_filter(raw: Option<&str>) -> AppResult<Option<PromotionStatus>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| AppError::invalid("status", "is not a promotion status"))
        })
        .transpose()
}

/// The years a date filter or cursor may name. Both databases store and
/// compare every time in them the same way: PostgreSQL's `timestamptz`
/// ends at 4713 BC, and SQLite compares times as text, which holds only
/// while the year has four digits and no sign.
pub(crate) const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// `t`, if its year is in [`YEARS`].
pub(crate) fn storable(t: DateTime<Utc>, field: &'static str) -> AppResult<DateTime<Utc>> {
    if YEARS.contains(&t.year()) {
        Ok(t)
    } else {
        Err(AppError::invalid(
            field,
            "must be between the years 0001 and 9999 (UTC)",
        ))
    }
}

/// An optional keyset cursor (see [`encode_cursor`]).
pub(crate) fn cursor_filter(raw: Option<&str>) -> AppResult<Option<(DateTime<Utc>, uuid::Uuid)>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(decode_cursor)
        .transpose()
}

/// A keyset cursor: the last row's time (µs since the epoch) and id.
pub(crate) fn encode_cursor(at: &DateTime<Utc>, id: &uuid::Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id)
}

pub(crate) fn decode_cursor(raw: &str) -> AppResult<(DateTime<Utc>, uuid::Uuid)> {
    let bad = || AppError::invalid("cursor", "is not a cursor this server made");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|t| YEARS.contains(&t.year()))
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// Cuts a result fetched with one row too many down to `size`, and returns
/// the cursor of the next page if there is one.
pub(crate) fn paginate<T>(
    found: &mut Vec<T>,
    size: i64,
    key: impl Fn(&T) -> (DateTime<Utc>, uuid::Uuid),
) -> Option<String> {
    let size = usize::try_from(size).unwrap_or(0);
    if found.len() <= size {
        return None;
    }
    found.truncate(size);
    found.last().map(|row| {
        let (at, id) = key(row);
        encode_cursor(&at, &id)
    })
}

/// `YYYY-MM-DD` (a year in [`YEARS`]) as the start of that day (UTC);
/// `end` gives the start of the next day, so an `until` date includes its
/// whole day. The end of 9999-12-31 is no bound at all: nothing is later.
pub(crate) fn parse_day(
    raw: Option<&str>,
    name: &'static str,
    end: bool,
) -> AppResult<Option<DateTime<Utc>>> {
    let Some(raw) = raw else { return Ok(None) };
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| AppError::invalid(name, "must be a date like 2026-01-31"))?;
    if !YEARS.contains(&day.year()) {
        return Err(AppError::invalid(
            name,
            "must be a date between 0001-01-01 and 9999-12-31",
        ));
    }
    let day = if end {
        match day.succ_opt().filter(|d| YEARS.contains(&d.year())) {
            Some(next) => next,
            None => return Ok(None),
        }
    } else {
        day
    };
    Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

/// The set filters as a query string, for "next page" and export links.
pub(crate) fn filters_query(filters: &[(&str, &Option<String>)]) -> String {
    filters
        .iter()
        .filter_map(|(k, v)| super::non_blank(v).map(|v| format!("{k}={}", url_encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// An export, in the format the query asked for (CSV unless `json`).
pub(crate) fn export(
    format: Option<&str>,
    name: &str,
    columns: &[&str],
    rows: Vec<Vec<String>>,
    json: serde_json::Value,
) -> AppResult<Response> {
    match format.unwrap_or("csv") {
        "json" => Ok((
            [(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.json\""),
            )],
            axum::Json(json),
        )
            .into_response()),
        "csv" => {
            let mut out = columns.join(",");
            out.push('\n');
            for row in rows {
                let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}.csv\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
        _ => Err(AppError::invalid("format", "must be csv or json")),
    }
}

/// One CSV cell: quoted when needed, and defused against spreadsheet
/// formula injection (a leading `=`, `+`, `-` or `@`).
pub(crate) fn csv_cell(raw: &str) -> String {
    let defused = if raw.starts_with(['=', '+', '-', '@']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_the_round_trip() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let id = uuid::Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(&at, &id)).unwrap(), (at, id));
        assert!(decode_cursor("garbage").is_err());
    }

    #[test]
    fn a_page_fetched_with_one_extra_row_has_a_next_cursor() {
        let at = DateTime::from_timestamp_micros(1).unwrap();
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
        let mut rows = ids.clone();
        let next = paginate(&mut rows, 2, |id| (at, *id));
        assert_eq!(rows, ids[..2]);
        assert_eq!(next, Some(encode_cursor(&at, &ids[1])));
        let mut short = ids[..2].to_vec();
        assert_eq!(paginate(&mut short, 2, |id| (at, *id)), None);
    }

    #[test]
    fn text_filters_refuse_control_characters() {
        assert_eq!(
            text_filter(Some(" lena "), "actor").unwrap().as_deref(),
            Some("lena")
        );
        assert_eq!(text_filter(Some(""), "actor").unwrap(), None);
        assert!(text_filter(Some("a\0b"), "actor").is_err());
        assert!(text_filter(Some(&"x".repeat(201)), "actor").is_err());
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
    }

    #[test]
    fn dates_and_cursors_outside_the_years_1_to_9999_are_refused() {
        assert!(parse_day(Some("0000-12-31"), "since", false).is_err());
        assert!(parse_day(Some("-5000-01-01"), "since", false).is_err());
        assert!(parse_day(Some("+10000-01-01"), "since", false).is_err());
        assert!(
            parse_day(Some("0001-01-01"), "since", false)
                .unwrap()
                .is_some()
        );
        assert_eq!(parse_day(Some("9999-12-31"), "until", true).unwrap(), None);
        let id = uuid::Uuid::new_v4();
        assert!(decode_cursor(&format!("-7922000000000000000_{id}")).is_err());
        assert!(decode_cursor(&format!("253402300800000000_{id}")).is_err());
        assert!(decode_cursor(&format!("253402300799999999_{id}")).is_ok());
        let late = DateTime::parse_from_rfc3339("9999-12-31T23:59:59-05:00").unwrap();
        assert!(storable(late.to_utc(), "until").is_err());
    }

    #[test]
    fn until_includes_its_whole_day() {
        let until = parse_day(Some("2026-01-31"), "until", true)
            .unwrap()
            .unwrap();
        assert_eq!(until.to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert!(parse_day(Some("31/01/2026"), "until", false).is_err());
    }
}

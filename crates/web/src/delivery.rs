//! Delivery metrics of a pipeline or a team, shared by the API and the
//! pages: the period a request asks for, and the figures over it (added up
//! by `stagehand_domain::delivery` from the store's day rows).

use crate::error::{AppError, AppResult};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::Deserialize;
use stagehand_domain::delivery::DeliveryMetrics;
use stagehand_domain::{PipelineId, StageId, TeamId};
use stagehand_store::{Pipeline, Store};
use std::collections::BTreeSet;

/// The longest period one request may add up (two years of days).
pub(crate) const MAX_DAYS: u64 = 731;
/// The period when none is asked for: the last 30 days, today included.
pub(crate) const DEFAULT_DAYS: u64 = 30;

/// `?since=&until=&days=`: dates (`2026-11-01`) or RFC 3339 times, in UTC.
/// Metrics are kept per day, so `since` counts from the start of its day
/// and `until` to the end of its day; `days` (with `until` or today) is the
/// period's length when `since` is not given.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PeriodQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub days: Option<String>,
}

/// Whole days `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub since: NaiveDate,
    pub until: NaiveDate,
}

fn day_of(raw: &str, field: &'static str) -> AppResult<(NaiveDate, bool)> {
    let invalid = || AppError::invalid(field, "must be a date like 2026-11-01 or an RFC 3339 time");
    let (day, midnight) = match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(day) => (day, true),
        Err(_) => {
            let t = DateTime::parse_from_rfc3339(raw).map_err(|_| invalid())?;
            let t = t.with_timezone(&Utc);
            (t.date_naive(), t.time() == chrono::NaiveTime::MIN)
        }
    };
    if !(1..=9998).contains(&day.year()) {
        return Err(AppError::invalid(
            field,
            "must be between 0001-01-01 and 9998-12-31",
        ));
    }
    Ok((day, midnight))
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl PeriodQuery {
    pub(crate) fn period(&self, today: NaiveDate) -> AppResult<Period> {
        let days = match given(&self.days) {
            None => DEFAULT_DAYS,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .ok_or_else(|| {
                    AppError::invalid(
                        "days",
                        format!("must be a whole number from 1 to {MAX_DAYS}"),
                    )
                })?,
        };
        let until = match given(&self.until) {
            None => today + Days::new(1),
            // A date includes its day; a time at midnight ends there.
            Some(raw) => match day_of(raw, "until")? {
                (day, true) if raw.contains('T') || raw.contains('t') => day,
                (day, _) => day + Days::new(1),
            },
        };
        if given(&self.since).is_some() && given(&self.days).is_some() {
            return Err(AppError::invalid(
                "days",
                "give since or days, not both: days counts back from until",
            ));
        }
        let since = match given(&self.since) {
            None => until
                .checked_sub_days(Days::new(days))
                .filter(|d| d.year() >= 1)
                .ok_or_else(|| AppError::invalid("days", "reaches before the year 1"))?,
            Some(raw) => day_of(raw, "since")?.0,
        };
        if since >= until {
            return Err(AppError::invalid("since", "must be before until"));
        }
        if (until - since).num_days() as u64 > MAX_DAYS {
            return Err(AppError::invalid(
                "since",
                format!("the period may span at most {MAX_DAYS} days"),
            ));
        }
        Ok(Period { since, until })
    }
}

/// Today in UTC, the day metrics are kept by.
pub(crate) fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The pipeline's figures: deliveries into its last stage, approval waits
/// into any of its stages.
pub(crate) async fn of_pipeline(
    store: &dyn Store,
    team: TeamId,
    pipeline: PipelineId,
    period: Period,
) -> AppResult<(Pipeline, DeliveryMetrics)> {
    let pipeline = store.pipeline(team, pipeline).await?;
    let last: BTreeSet<StageId> = pipeline.stages.last().map(|s| s.id).into_iter().collect();
    let (days, waiting) = store
        .delivery_days(team, Some(pipeline.id), period.since, period.until)
        .await?;
    let metrics = DeliveryMetrics::compute(&days, &last, period.since, period.until, waiting);
    Ok((pipeline, metrics))
}

/// The team's figures: every pipeline's deliveries into its last stage.
pub(crate) async fn of_team(
    store: &dyn Store,
    team: TeamId,
    period: Period,
) -> AppResult<(Vec<Pipeline>, DeliveryMetrics)> {
    let pipelines = store.pipelines(team).await?;
    let last: BTreeSet<StageId> = pipelines
        .iter()
        .filter_map(|p| p.stages.last().map(|s| s.id))
        .collect();
    let (mut days, waiting) = store
        .delivery_days(team, None, period.since, period.until)
        .await?;
    // The rows of a deleted pipeline stay (history outlives what it
    // describes) but are no longer the team's figures.
    let kept: BTreeSet<_> = pipelines.iter().map(|p| p.id).collect();
    days.retain(|d| kept.contains(&d.pipeline_id));
    let metrics = DeliveryMetrics::compute(&days, &last, period.since, period.until, waiting);
    Ok((pipelines, metrics))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(since: Option<&str>, until: Option<&str>, days: Option<&str>) -> PeriodQuery {
        PeriodQuery {
            since: since.map(Into::into),
            until: until.map(Into::into),
            days: days.map(Into::into),
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_default_period_is_the_last_30_days_with_today() {
        let p = q(None, None, None).period(d("2026-11-24")).unwrap();
        assert_eq!((p.since, p.until), (d("2026-10-26"), d("2026-11-25")));
    }

    #[test]
    fn dates_include_their_days_and_times_round_out_to_whole_days() {
        let today = d("2026-11-24");
        let p = q(Some("2026-11-01"), Some("2026-11-07"), None)
            .period(today)
            .unwrap();
        assert_eq!((p.since, p.until), (d("2026-11-01"), d("2026-11-08")));
        let p = q(
            Some("2026-11-01T13:00:00Z"),
            Some("2026-11-07T00:00:00Z"),
            None,
        )
        .period(today)
        .unwrap();
        assert_eq!((p.since, p.until), (d("2026-11-01"), d("2026-11-07")));
        let p = q(None, Some("2026-11-07T09:30:00+02:00"), Some("7"))
            .period(today)
            .unwrap();
        assert_eq!((p.since, p.until), (d("2026-11-01"), d("2026-11-08")));
    }

    #[test]
    fn a_bad_period_names_its_field() {
        let today = d("2026-11-24");
        for (query, field) in [
            (q(Some("yesterday"), None, None), "since"),
            (q(None, Some("2026-13-01"), None), "until"),
            (q(Some("2026-11-10"), Some("2026-11-01"), None), "since"),
            (q(Some("2020-01-01"), Some("2026-11-01"), None), "since"),
            (q(None, None, Some("0")), "days"),
            (q(None, None, Some("9999")), "days"),
            (q(None, None, Some("-1")), "days"),
            (q(Some("0000-01-01"), None, None), "since"),
            (q(None, Some("0001-01-01T00:00:00Z"), Some("1")), "days"),
            (q(Some("2026-11-01"), None, Some("30")), "days"),
        ] {
            match query.period(today) {
                Err(AppError::Invalid(errors)) => assert_eq!(errors[0].field, field, "{query:?}"),
                other => panic!("{query:?}: {other:?}"),
            }
        }
    }
}

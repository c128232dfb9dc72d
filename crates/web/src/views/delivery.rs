//! The delivery metrics pages of a pipeline and of a team: the five figures
//! over a period and server-drawn SVG charts of them (no script: the CSP
//! stays as it is), each with the same numbers as a table.

use super::paths::PipelinePath;
use super::{Chrome, render};
use crate::AppState;
use crate::authz::Ctx;
use crate::delivery::{self, Period, PeriodQuery};
use crate::error::AppResult;
use crate::extract::Query;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use stagehand_domain::delivery::{BUCKET_LABELS, DeliveryMetrics, DurationSummary};

/// "45 s", "12 min", "3 h 20 min", "2 d 4 h".
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min", s / 60),
        3_600..86_400 => match (s % 3_600) / 60 {
            0 => format!("{} h", s / 3_600),
            m => format!("{} h {m} min", s / 3_600),
        },
        _ => match (s % 86_400) / 3_600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

/// One figure of the page: the headline and what it is made of.
struct Figure {
    id: &'static str,
    title: &'static str,
    value: String,
    detail: String,
}

fn durations(d: &DurationSummary, what: (&str, &str)) -> (String, String) {
    match (d.median_seconds, d.p90_seconds) {
        (Some(median), Some(p90)) => (
            duration(median),
            format!(
                "median of {} {}; 9 in 10 within {}",
                d.count,
                if d.count == 1 { what.0 } else { what.1 },
                duration(p90)
            ),
        ),
        _ => ("—".into(), format!("no {} in this period", what.1)),
    }
}

fn figures(m: &DeliveryMetrics) -> Vec<Figure> {
    let f = &m.deployment_frequency;
    let rate = &m.change_failure_rate;
    let (lead, lead_detail) = durations(&m.lead_time, ("change", "changes"));
    let (restore, restore_detail) = durations(&m.time_to_restore, ("restore", "restores"));
    let (wait, mut wait_detail) = durations(&m.approval_wait.decided, ("decision", "decisions"));
    match m.approval_wait.waiting_now {
        0 => {}
        1 => wait_detail.push_str("; 1 request waiting now"),
        n => wait_detail.push_str(&format!("; {n} requests waiting now")),
    }
    vec![
        Figure {
            id: "frequency",
            title: "Deployment frequency",
            value: format!("{:.1} a week", f.per_week),
            detail: format!(
                "{} {} in {} days",
                f.deployments,
                if f.deployments == 1 {
                    "deployment"
                } else {
                    "deployments"
                },
                m.days
            ),
        },
        Figure {
            id: "lead-time",
            title: "Lead time",
            value: lead,
            detail: lead_detail,
        },
        Figure {
            id: "failure-rate",
            title: "Change failure rate",
            value: rate
                .rate
                .map_or("—".into(), |r| format!("{:.0} %", r * 100.0)),
            detail: match rate.attempts {
                0 => "nothing shipped in this period".into(),
                n => format!(
                    "{} of {n}: {} rolled back, {} failed to deploy",
                    rate.failures, rate.rolled_back, rate.failed_deploys
                ),
            },
        },
        Figure {
            id: "restore",
            title: "Time to restore",
            value: restore,
            detail: restore_detail,
        },
        Figure {
            id: "approval-wait",
            title: "Approval wait",
            value: wait,
            detail: wait_detail,
        },
    ]
}

/// A bar of a chart, in the chart's own coordinates (`VIEW_W` × `VIEW_H`).
struct Bar {
    x: String,
    width: String,
    /// The whole bar.
    y: String,
    height: String,
    /// The failed part, drawn over the top of the bar.
    failed_height: String,
    label: String,
}

/// A label under the x axis.
struct Tick {
    x: String,
    text: String,
    /// "start", "middle" or "end": the first and last labels do not run
    /// off the chart.
    anchor: &'static str,
}

/// A bar chart drawn by the template as SVG.
struct Chart {
    id: &'static str,
    title: String,
    /// Says in words what the chart shows, for screen readers.
    summary: String,
    max: u64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    /// The rows of the table that carries the same numbers.
    rows: Vec<(String, u64, u64)>,
    /// Labels slanted, to fit one under every bar.
    slanted: bool,
}

const VIEW_W: f64 = 640.0;
const PLOT_TOP: f64 = 16.0;
const PLOT_BOTTOM: f64 = 170.0;
const PLOT_LEFT: f64 = 36.0;

fn coordinate(v: f64) -> String {
    format!("{v:.1}")
}

impl Chart {
    /// Bars of `(label, total, failed)` side by side, ticks under those
    /// `tick` picks.
    fn new(
        id: &'static str,
        title: String,
        summary: String,
        rows: Vec<(String, u64, u64)>,
        tick: impl Fn(usize, usize) -> bool,
    ) -> Self {
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
        let n = rows.len().max(1) as f64;
        let slot = (VIEW_W - PLOT_LEFT) / n;
        let gap = if slot > 6.0 { slot * 0.2 } else { 0.0 };
        let scale = |v: u64| {
            if max == 0 {
                0.0
            } else {
                (PLOT_BOTTOM - PLOT_TOP) * v as f64 / max as f64
            }
        };
        let mut bars = Vec::new();
        let mut ticks = Vec::new();
        let count = rows.len();
        for (i, (label, total, failed)) in rows.iter().enumerate() {
            let x = PLOT_LEFT + slot * i as f64 + gap / 2.0;
            let (h, fh) = (scale(*total), scale((*failed).min(*total)));
            if *total > 0 {
                bars.push(Bar {
                    x: coordinate(x),
                    width: coordinate((slot - gap).max(0.5)),
                    y: coordinate(PLOT_BOTTOM - h),
                    height: coordinate(h),
                    failed_height: coordinate(fh),
                    label: match failed {
                        0 => format!("{label}: {total}"),
                        f => format!("{label}: {total}, {f} failed"),
                    },
                });
            }
            if tick(i, count) {
                ticks.push(Tick {
                    x: coordinate(x + (slot - gap) / 2.0),
                    text: label.clone(),
                    anchor: match i {
                        0 if count > 1 => "start",
                        i if i + 1 == count && count > 1 => "end",
                        _ => "middle",
                    },
                });
            }
        }
        Chart {
            id,
            title,
            summary,
            max,
            bars,
            ticks,
            rows,
            slanted: false,
        }
    }

    fn daily(m: &DeliveryMetrics) -> Self {
        let rows: Vec<(String, u64, u64)> = m
            .daily
            .iter()
            .map(|d| {
                (
                    d.day.format("%b %-d").to_string(),
                    d.deployments,
                    d.failures,
                )
            })
            .collect();
        let busiest = m.daily.iter().max_by_key(|d| d.deployments);
        let summary = match busiest {
            Some(b) if b.deployments > 0 => format!(
                "Deployments per day from {} to {}: {} in all, at most {} on {}.",
                m.since.format("%b %-d"),
                m.daily.last().map_or(m.since, |d| d.day).format("%b %-d"),
                m.deployment_frequency.deployments,
                b.deployments,
                b.day.format("%b %-d"),
            ),
            _ => "No deployment in this period.".into(),
        };
        // The first and last days, and a few between.
        let every = (rows.len() / 5).max(1);
        Chart::new(
            "daily",
            "Deployments per day".into(),
            summary,
            rows,
            move |i, n| i == 0 || i + 1 == n || (i % every == 0 && i + every / 2 < n),
        )
    }

    fn spread(id: &'static str, title: &str, d: &DurationSummary) -> Self {
        let rows: Vec<(String, u64, u64)> = BUCKET_LABELS
            .iter()
            .zip(d.buckets)
            .map(|(label, n)| ((*label).to_owned(), n, 0))
            .collect();
        let summary = match d.count {
            0 => format!("{title}: none in this period."),
            n => format!(
                "{title} of {n}, by how long: {}.",
                rows.iter()
                    .filter(|r| r.1 > 0)
                    .map(|r| format!("{} {}", r.1, r.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut chart = Chart::new(id, title.into(), summary, rows, |_, _| true);
        chart.slanted = true;
        for t in &mut chart.ticks {
            t.anchor = "end";
        }
        chart
    }
}

struct PeriodChoice {
    days: u64,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "metrics.html")]
struct MetricsPage {
    chrome: Chrome,
    /// None of the choices is the period shown (it was asked by dates).
    custom: bool,
    /// "checkout" or "the team payments".
    scope: String,
    /// What the deliveries are counted into.
    into: String,
    /// The pipeline page (or the team's), to go back to.
    back: String,
    history: String,
    since: String,
    last_day: String,
    days: u64,
    choices: Vec<PeriodChoice>,
    figures: Vec<Figure>,
    charts: Vec<Chart>,
}

fn choices(period: Period) -> Vec<PeriodChoice> {
    let days = (period.until - period.since).num_days() as u64;
    [
        (7, "7 days"),
        (30, "30 days"),
        (90, "90 days"),
        (365, "year"),
    ]
    .into_iter()
    .map(|(d, label)| PeriodChoice {
        days: d,
        label,
        selected: d == days,
    })
    .collect()
}

fn page(
    ctx: &Ctx,
    scope: String,
    into: String,
    (back, history): (String, String),
    period: Period,
    m: &DeliveryMetrics,
) -> AppResult<Response> {
    let choices = choices(period);
    render(MetricsPage {
        chrome: Chrome::new(ctx),
        custom: !choices.iter().any(|c| c.selected),
        scope,
        into,
        back,
        history,
        since: period.since.format("%b %-d, %Y").to_string(),
        last_day: period
            .until
            .pred_opt()
            .unwrap_or(period.until)
            .format("%b %-d, %Y")
            .to_string(),
        days: m.days,
        choices,
        figures: figures(m),
        charts: vec![
            Chart::daily(m),
            Chart::spread("lead-times", "Lead times", &m.lead_time),
            Chart::spread("restore-times", "Times to restore", &m.time_to_restore),
            Chart::spread("approval-waits", "Approval waits", &m.approval_wait.decided),
        ],
    })
}

pub(crate) async fn view_pipeline_metrics_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let (team, pipeline) = path.ids()?;
    let period = q.period(delivery::today())?;
    let (pipeline, m) = delivery::of_pipeline(state.store.as_ref(), team, pipeline, period).await?;
    let into = match pipeline.stages.last() {
        Some(s) if pipeline.stages.len() > 1 => {
            format!("Deployments into {}, its last stage", s.instance_name)
        }
        _ => "No deployments yet: a pipeline needs two stages to promote".into(),
    };
    page(
        &ctx,
        pipeline.name.to_string(),
        into,
        (
            format!("/teams/{team}/pipelines/{}", pipeline.id),
            format!("/teams/{team}/promotions?pipeline={}", pipeline.id),
        ),
        period,
        &m,
    )
}

pub(crate) async fn view_team_metrics_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(team): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let team = super::paths::parse_id::<stagehand_domain::TeamId>(&team, "team")?;
    let period = q.period(delivery::today())?;
    let (pipelines, m) = delivery::of_team(state.store.as_ref(), team, period).await?;
    let name = state.store.team(team).await?.name;
    let into = match pipelines.len() {
        1 => "Deployments into the last stage of its pipeline".to_owned(),
        n => format!("Deployments into the last stage of each of its {n} pipelines"),
    };
    page(
        &ctx,
        format!("team {name}"),
        into,
        (
            format!("/teams/{team}"),
            format!("/teams/{team}/promotions"),
        ),
        period,
        &m,
    )
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(59.4), "59 s");
        assert_eq!(duration(60.0), "1 min");
        assert_eq!(duration(3_599.0), "59 min");
        assert_eq!(duration(3_600.0), "1 h");
        assert_eq!(duration(12_000.0), "3 h 20 min");
        assert_eq!(duration(86_400.0), "1 d");
        assert_eq!(duration(187_200.0), "2 d 4 h");
    }
}

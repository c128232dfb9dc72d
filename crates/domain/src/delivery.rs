//! Delivery metrics of a pipeline or a team over a period: deployment
//! frequency into the last stage, lead time, change failure rate, time to
//! restore and approval wait.
//!
//! The store keeps one [`DeliveryDay`] per target stage and day; a period's
//! figures are those rows added up ([`DeliveryMetrics::compute`]). Durations
//! are kept as [`Histogram`]s: counts, sums and maxima are exact, and a
//! percentile is interpolated inside the bucket that holds it.

use crate::{PipelineId, StageId};
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Upper bounds (seconds, exclusive) of the histogram's buckets; a last
/// bucket holds everything from 30 days on.
pub const BUCKET_BOUNDS: [i64; 14] = [
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3_600,
    2 * 3_600,
    4 * 3_600,
    8 * 3_600,
    86_400,
    2 * 86_400,
    4 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
];

/// Buckets in a [`Histogram`]: one per bound and the overflow.
pub const BUCKETS: usize = BUCKET_BOUNDS.len() + 1;

/// Short labels of the buckets, "< 1 min" … "≥ 30 d", for charts.
pub const BUCKET_LABELS: [&str; BUCKETS] = [
    "< 1 min", "< 5 min", "< 15 min", "< 30 min", "< 1 h", "< 2 h", "< 4 h", "< 8 h", "< 1 d",
    "< 2 d", "< 4 d", "< 7 d", "< 14 d", "< 30 d", "≥ 30 d",
];

/// Durations in seconds, bucketed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum: i64,
    pub max: i64,
    pub buckets: [u64; BUCKETS],
}

impl Histogram {
    /// Adds one duration; a negative one (clocks of two replicas) counts
    /// as zero.
    pub fn record(&mut self, seconds: i64) {
        let s = seconds.max(0);
        let bucket = BUCKET_BOUNDS
            .iter()
            .position(|&bound| s < bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(s);
        self.max = self.max.max(s);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The `q` quantile (0 < q ≤ 1), interpolated linearly inside its
    /// bucket and never above the largest duration recorded.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((below + n) as f64) < rank {
                below += n;
                continue;
            }
            let lower = if i == 0 { 0 } else { BUCKET_BOUNDS[i - 1] } as f64;
            let max = self.max as f64;
            let upper = BUCKET_BOUNDS.get(i).map_or(max, |&b| b as f64).min(max);
            let within = (rank - below as f64) / n as f64;
            return Some((lower + (upper - lower).max(0.0) * within).min(max));
        }
        Some(self.max as f64)
    }

    pub fn summary(&self) -> DurationSummary {
        DurationSummary {
            count: self.count,
            median_seconds: self.quantile(0.5).map(f64::round),
            p90_seconds: self.quantile(0.9).map(f64::round),
            mean_seconds: self.mean().map(f64::round),
            max_seconds: (self.count > 0).then_some(self.max),
            buckets: self.buckets,
        }
    }
}

/// What a period's durations come to. Percentiles are interpolated from
/// the histogram (see the module's note); `count`, the mean and the
/// maximum are exact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationSummary {
    pub count: u64,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub mean_seconds: Option<f64>,
    pub max_seconds: Option<i64>,
    /// Counts per bucket, in the order of [`BUCKET_LABELS`].
    pub buckets: [u64; BUCKETS],
}

/// One target stage on one day (UTC), as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryDay {
    pub stage_id: StageId,
    pub pipeline_id: PipelineId,
    pub day: NaiveDate,
    /// Promotions applied into the stage that day (rollbacks not counted).
    pub deployments: u64,
    /// Of those, the ones rolled back since.
    pub rolled_back: u64,
    /// Promotions into the stage requested that day whose runtime deploy
    /// failed.
    pub failed: u64,
    /// Per deployment: from the first save of the oldest flow change it
    /// carries to its arrival.
    pub lead_times: Histogram,
    /// Per deployment rolled back since, from its arrival to its rollback;
    /// per failed deploy, from the failure to the next arrival.
    pub restore_times: Histogram,
    /// Per request that needed approval (requested that day, decided
    /// since): from the request to the decision.
    pub approval_waits: Histogram,
}

/// Deployments into the last stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentFrequency {
    pub deployments: u64,
    pub per_day: f64,
    pub per_week: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeFailureRate {
    /// Deployments into the last stage and failed deploys into it.
    pub attempts: u64,
    /// Rolled back since, plus failed deploys.
    pub failures: u64,
    pub rolled_back: u64,
    pub failed_deploys: u64,
    /// `failures / attempts`; none without attempts.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalWait {
    #[serde(flatten)]
    pub decided: DurationSummary,
    /// Requests into the scope's stages awaiting approval now.
    pub waiting_now: u64,
}

/// One day of the period, for a chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyDeliveries {
    pub day: NaiveDate,
    pub deployments: u64,
    pub failures: u64,
}

/// The five figures of a pipeline or a team over `[since, until)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryMetrics {
    pub since: NaiveDate,
    pub until: NaiveDate,
    pub days: u64,
    pub deployment_frequency: DeploymentFrequency,
    pub lead_time: DurationSummary,
    pub change_failure_rate: ChangeFailureRate,
    pub time_to_restore: DurationSummary,
    pub approval_wait: ApprovalWait,
    /// Every day of the period, oldest first, days without any included.
    pub daily: Vec<DailyDeliveries>,
}

impl DeliveryMetrics {
    /// Adds up `days` over `[since, until)`. Deployments, lead times,
    /// failures and restores count only in `last_stages` (a pipeline's last
    /// stage, or each pipeline's for a team); approval waits count in every
    /// stage.
    pub fn compute(
        days: &[DeliveryDay],
        last_stages: &BTreeSet<StageId>,
        since: NaiveDate,
        until: NaiveDate,
        waiting_now: u64,
    ) -> Self {
        let span = (until - since).num_days().max(0) as u64;
        let mut daily: Vec<DailyDeliveries> = (0..span)
            .filter_map(|i| since.checked_add_days(Days::new(i)))
            .map(|day| DailyDeliveries {
                day,
                deployments: 0,
                failures: 0,
            })
            .collect();
        let (mut deployments, mut rolled_back, mut failed) = (0, 0, 0);
        let (mut lead, mut restore, mut wait) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for d in days.iter().filter(|d| d.day >= since && d.day < until) {
            wait.merge(&d.approval_waits);
            if !last_stages.contains(&d.stage_id) {
                continue;
            }
            deployments += d.deployments;
            rolled_back += d.rolled_back;
            failed += d.failed;
            lead.merge(&d.lead_times);
            restore.merge(&d.restore_times);
            let at = (d.day - since).num_days() as usize;
            if let Some(slot) = daily.get_mut(at) {
                slot.deployments += d.deployments;
                slot.failures += d.rolled_back + d.failed;
            }
        }
        let attempts = deployments + failed;
        let failures = rolled_back + failed;
        let per_day = if span == 0 {
            0.0
        } else {
            deployments as f64 / span as f64
        };
        DeliveryMetrics {
            since,
            until,
            days: span,
            deployment_frequency: DeploymentFrequency {
                deployments,
                per_day,
                per_week: per_day * 7.0,
            },
            lead_time: lead.summary(),
            change_failure_rate: ChangeFailureRate {
                attempts,
                failures,
                rolled_back,
                failed_deploys: failed,
                rate: (attempts > 0).then(|| failures as f64 / attempts as f64),
            },
            time_to_restore: restore.summary(),
            approval_wait: ApprovalWait {
                decided: wait.summary(),
                waiting_now,
            },
            daily,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[i64]) -> Histogram {
        let mut h = Histogram::default();
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn counts_sums_and_maxima_are_exact() {
        let h = of(&[30, 90, 4_000, 4_000, 100_000]);
        assert_eq!(h.count, 5);
        assert_eq!(h.sum, 108_120);
        assert_eq!(h.max, 100_000);
        assert_eq!(h.mean(), Some(21_624.0));
        assert_eq!(h.buckets[0], 1, "30 s is under a minute");
        assert_eq!(h.buckets[1], 1, "90 s is under five minutes");
        assert_eq!(h.buckets[5], 2, "4,000 s is under two hours");
        assert_eq!(h.buckets[9], 1, "100,000 s is under two days");
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.summary().median_seconds, None);
        assert_eq!(h.summary().max_seconds, None);
    }

    #[test]
    fn a_single_duration_is_its_own_median_when_it_is_the_maximum() {
        let h = of(&[600]);
        assert_eq!(h.quantile(0.5), Some(600.0));
        assert_eq!(h.quantile(0.9), Some(600.0));
    }

    #[test]
    fn the_median_falls_in_the_bucket_of_the_middle_value() {
        // 3 quick, 1 in the hour, 3 slow: the median is in [30 min, 1 h).
        let h = of(&[10, 20, 30, 2_000, 90_000, 90_000, 90_000]);
        let m = h.quantile(0.5).unwrap();
        assert!((1_800.0..3_600.0).contains(&m), "{m}");
    }

    #[test]
    fn negative_durations_count_as_zero() {
        let h = of(&[-5]);
        assert_eq!((h.sum, h.max, h.buckets[0]), (0, 0, 1));
    }

    #[test]
    fn a_period_adds_up_its_days_and_counts_deliveries_in_the_last_stage_only() {
        let last = StageId::new();
        let middle = StageId::new();
        let pipeline = PipelineId::new();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let row = |stage, d, deployments, rolled_back, failed, wait: &[i64]| DeliveryDay {
            stage_id: stage,
            pipeline_id: pipeline,
            day: day(d),
            deployments,
            rolled_back,
            failed,
            lead_times: of(&vec![3_600; deployments as usize]),
            restore_times: of(&vec![600; (rolled_back + failed) as usize]),
            approval_waits: of(wait),
        };
        let days = [
            row(last, 2, 3, 1, 0, &[60]),
            row(last, 4, 1, 0, 1, &[]),
            row(middle, 2, 5, 2, 0, &[120, 240]),
            // Outside the period.
            row(last, 9, 7, 7, 7, &[7]),
        ];
        let m = DeliveryMetrics::compute(&days, &[last].into(), day(1), day(8), 2);
        assert_eq!(m.days, 7);
        assert_eq!(m.deployment_frequency.deployments, 4);
        assert!((m.deployment_frequency.per_week - 4.0).abs() < 1e-9);
        assert_eq!(m.change_failure_rate.attempts, 5);
        assert_eq!(m.change_failure_rate.failures, 2);
        assert_eq!(m.change_failure_rate.rate, Some(0.4));
        assert_eq!(m.lead_time.count, 4);
        assert_eq!(m.time_to_restore.count, 2);
        assert_eq!(
            m.approval_wait.decided.count, 3,
            "waits count in every stage"
        );
        assert_eq!(m.approval_wait.waiting_now, 2);
        assert_eq!(m.daily.len(), 7);
        assert_eq!((m.daily[1].deployments, m.daily[1].failures), (3, 1));
        assert_eq!((m.daily[3].deployments, m.daily[3].failures), (1, 1));
        assert_eq!(m.daily.iter().map(|d| d.deployments).sum::<u64>(), 4);
    }

    #[test]
    fn a_period_without_deliveries_has_no_rate() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let m = DeliveryMetrics::compute(&[], &BTreeSet::new(), d, d + Days::new(30), 0);
        assert_eq!(m.change_failure_rate.rate, None);
        assert_eq!(m.deployment_frequency.per_day, 0.0);
        assert_eq!(m.daily.len(), 30);
    }

    proptest! {
        #[test]
        fn merging_is_recording_everything_in_one(
            a in proptest::collection::vec(0i64..5_000_000, 0..50),
            b in proptest::collection::vec(0i64..5_000_000, 0..50),
        ) {
            let mut merged = of(&a);
            merged.merge(&of(&b));
            let all: Vec<i64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(merged, of(&all));
        }

        #[test]
        fn a_percentile_lies_in_the_bucket_of_the_exact_one(
            mut values in proptest::collection::vec(0i64..5_000_000, 1..200),
            q in 0.01f64..1.0,
        ) {
            let h = of(&values);
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let exact = values[rank - 1];
            let bucket = |v: f64| BUCKET_BOUNDS.iter().position(|&b| v < b as f64).unwrap_or(BUCKETS - 1);
            let estimate = h.quantile(q).unwrap();
            prop_assert!(estimate <= h.max as f64);
            let (e, x) = (bucket(estimate), bucket(exact as f64));
            // Interpolation may reach the bucket's upper bound exactly.
            prop_assert!(e == x || (e == x + 1 && estimate == BUCKET_BOUNDS[x] as f64),
                "q {} estimate {} exact {}", q, estimate, exact);
        }
    }
}

//! The reports summary (SPEC §6): speed to lead, attempts before contact, answer rates,
//! overdue tasks, leads below the 8-attempt floor.
//!
//! A summary reads every lead and settled touch of its window: at a million leads that is
//! seconds of work and a long read snapshot, which is no way to answer a page. So summaries
//! are kept per window length (whole hours: "the last 720 hours") and computed off the
//! request path: a request gets the last summary of its window while it is fresh
//! (`Config::report_fresh`, or ten times what computing it took if that is longer); an older one (up to an hour) is served at once while a fresh one is
//! computed in the background; only a window never asked for (or not for an hour) is computed
//! while the request waits. Windows asked for in the last day are kept fresh by a background
//! task; `serve` computes the last 30 days at start. One summary is computed at a time. Each
//! summary says when it was computed.

use crate::{Engine, Result, now_ms};
use relentless_store::Millis;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOUR: Millis = 3_600_000;
/// How old a summary may be and still be served while a new one is computed.
const SERVE_STALE_FOR: Duration = Duration::from_secs(3600);
/// Windows asked for within this long are recomputed in the background.
const KEEP_WARM_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub(crate) struct ReportCache {
    entries: Mutex<HashMap<i64, Entry>>,
    /// Held while a summary is computed: one at a time, and a request that waited for it
    /// finds the summary another request just computed.
    computing: tokio::sync::Mutex<()>,
    warmer: std::sync::OnceLock<()>,
}

struct Entry {
    summary: Option<Arc<Summary>>,
    computed: Instant,
    /// How long computing it took: a summary that takes long is recomputed less often.
    took: Duration,
    used: Instant,
    refreshing: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    pub count: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Rate {
    pub sent: i64,
    pub answered: i64,
    pub rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub since: String,
    /// When these figures were computed (a minute old or more; see the module).
    pub computed_at: String,
    pub speed_to_lead: Percentiles,
    pub speed_to_call: Percentiles,
    /// Speed to lead per day (UTC date the leads came in): its trend over time.
    pub speed_to_lead_by_day: BTreeMap<String, Percentiles>,
    /// attempts → number of leads that answered after that many attempts.
    pub attempts_before_contact: BTreeMap<String, i64>,
    pub answer_rate_by_channel: BTreeMap<String, Rate>,
    /// "plan#step" (1-based) → rate.
    pub answer_rate_by_step: BTreeMap<String, Rate>,
    pub overdue_tasks_by_agent: BTreeMap<String, i64>,
    pub leads_below_8_attempts: i64,
}

/// Nearest-rank percentile.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn pct(mut v: Vec<i64>) -> Percentiles {
    v.sort_unstable();
    Percentiles {
        p50_seconds: percentile(&v, 50.0),
        p90_seconds: percentile(&v, 90.0),
        count: v.len(),
    }
}

fn rate(sent: i64, answered: i64) -> Rate {
    Rate {
        sent,
        answered,
        rate: if sent > 0 {
            answered as f64 / sent as f64
        } else {
            0.0
        },
    }
}

impl Engine {
    /// The summary for the window from `since` to now, from the cache when it can be.
    pub async fn report_summary(&self, since: Millis) -> Result<Arc<Summary>> {
        let hours = ((now_ms() - since).max(0) + HOUR / 2) / HOUR;
        {
            let mut entries = self.reports.entries.lock().unwrap();
            if let Some(e) = entries.get_mut(&hours)
                && let Some(summary) = e.summary.clone()
            {
                e.used = Instant::now();
                let age = e.computed.elapsed();
                if age < self.fresh_for(e) {
                    return Ok(summary);
                }
                if age < SERVE_STALE_FOR {
                    if !e.refreshing {
                        e.refreshing = true;
                        let engine = self.clone();
                        tokio::spawn(async move { engine.refresh_report(hours, false).await });
                    }
                    return Ok(summary);
                }
            }
        }
        self.start_report_warmer();
        self.refresh_report(hours, true).await
    }

    /// Computes the summary of a window (unless `only_if_stale` and another request has just
    /// done it) and keeps it.
    async fn refresh_report(&self, hours: i64, only_if_stale: bool) -> Result<Arc<Summary>> {
        let _one_at_a_time = self.reports.computing.lock().await;
        if only_if_stale
            && let Some(e) = self.reports.entries.lock().unwrap().get(&hours)
            && let Some(s) = &e.summary
            && e.computed.elapsed() < self.fresh_for(e)
        {
            return Ok(s.clone());
        }
        let started = Instant::now();
        let result = self.compute_report(now_ms() - hours * HOUR).await;
        let mut entries = self.reports.entries.lock().unwrap();
        let e = entries.entry(hours).or_insert(Entry {
            summary: None,
            computed: Instant::now(),
            took: Duration::ZERO,
            used: Instant::now(),
            refreshing: false,
        });
        e.refreshing = false;
        let summary = Arc::new(result?);
        e.summary = Some(summary.clone());
        e.computed = Instant::now();
        e.took = started.elapsed();
        Ok(summary)
    }

    /// How long a summary stays fresh: `report_fresh`, or ten times what computing it took
    /// (so a team whose summary takes 30 s spends at most a tenth of a core keeping it).
    fn fresh_for(&self, e: &Entry) -> Duration {
        self.config.report_fresh.max(e.took * 10)
    }

    /// Computes the last 30 days' summary (the reports page's default) in the background,
    /// so the first visit after a start is answered at once. `serve` calls it.
    pub fn warm_reports(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let _ = engine.report_summary(now_ms() - 30 * 24 * HOUR).await;
        });
    }

    /// Once per engine: a task that recomputes every window asked for in the last day when
    /// its summary turns stale, until the engine closes.
    fn start_report_warmer(&self) {
        if self.reports.warmer.set(()).is_err() {
            return;
        }
        let engine = self.clone();
        let closed = self.closed();
        tokio::spawn(async move {
            let work = async {
                loop {
                    tokio::time::sleep(engine.config.report_fresh.max(Duration::from_secs(1)))
                        .await;
                    let due: Vec<i64> = {
                        let mut entries = engine.reports.entries.lock().unwrap();
                        entries.retain(|_, e| e.used.elapsed() < KEEP_WARM_FOR);
                        entries
                            .iter()
                            .filter(|(_, e)| {
                                !e.refreshing && e.computed.elapsed() >= engine.fresh_for(e)
                            })
                            .map(|(h, _)| *h)
                            .collect()
                    };
                    for hours in due {
                        if let Err(e) = engine.refresh_report(hours, true).await {
                            tracing::warn!(error = %e, hours, "a report summary could not be computed");
                        }
                    }
                }
            };
            tokio::select! { _ = work => {}, _ = closed => {} }
        });
    }

    async fn compute_report(&self, since: Millis) -> Result<Summary> {
        let mut tx = self.store.read().await?;
        let rows = tx.report_rows(since, now_ms()).await?;
        let mut hist = BTreeMap::new();
        for a in rows.attempts_before_contact {
            *hist.entry(a.to_string()).or_insert(0) += 1;
        }
        let mut by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (at, secs) in &rows.speed_to_lead_at {
            let day = crate::ts(*at).to_string().chars().take(10).collect();
            by_day.entry(day).or_default().push(*secs);
        }
        Ok(Summary {
            since: crate::ts(since).to_string(),
            computed_at: crate::ts(now_ms()).to_string(),
            speed_to_lead_by_day: by_day.into_iter().map(|(d, v)| (d, pct(v))).collect(),
            speed_to_lead: pct(rows.speed_to_lead),
            speed_to_call: pct(rows.speed_to_call),
            attempts_before_contact: hist,
            answer_rate_by_channel: rows
                .by_channel
                .into_iter()
                .map(|(c, s, a)| (c, rate(s, a)))
                .collect(),
            answer_rate_by_step: rows
                .by_step
                .into_iter()
                .map(|(p, step, s, a)| (format!("{p}#{}", step + 1), rate(s, a)))
                .collect(),
            overdue_tasks_by_agent: rows.overdue_by_agent.into_iter().collect(),
            leads_below_8_attempts: rows.leads_below_8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
    }
}

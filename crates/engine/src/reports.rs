//! The reports summary (SPEC §6): speed to lead, attempts before contact, answer rates,
//! overdue tasks, leads below the 8-attempt floor.
//!
//! A summary adds up counters that triggers keep per hour (settled and answered touches by
//! plan step and channel; histograms of speed to lead, speed to first call and attempts before
//! contact; migration `0008_report_rollups`), plus two live counts (leads below the floor,
//! overdue tasks). A window starts at the top of the hour it falls in.
//!
//! Summaries are still kept per window length (whole hours: "the last 720 hours"): a request
//! gets the last summary of its window while it is fresh (`Config::report_fresh`, or ten times
//! what computing it took if that is longer); an older one (up to an hour) is served at once
//! while a fresh one is computed in the background; only a window never asked for (or not for
//! an hour) is computed while the request waits. Windows asked for in the last day are kept
//! fresh by a background task; `serve` computes the last 30 days at start. One summary is
//! computed at a time. Each summary says when it was computed.

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

/// Nearest-rank percentile of a histogram: `(value, count)` pairs sorted by value.
pub fn percentile(sorted: &[(i64, i64)], p: f64) -> Option<i64> {
    let total: i64 = sorted.iter().map(|(_, n)| n).sum();
    if total <= 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (v, n) in sorted {
        seen += n;
        if seen >= rank {
            return Some(*v);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

fn pct(mut v: Vec<(i64, i64)>) -> Percentiles {
    v.sort_unstable();
    Percentiles {
        p50_seconds: percentile(&v, 50.0),
        p90_seconds: percentile(&v, 90.0),
        count: v.iter().map(|(_, n)| *n).sum::<i64>().max(0) as usize,
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
        drop(tx);
        let (mut to_lead, mut to_call) = (Vec::new(), Vec::new());
        let mut by_day: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        let mut hist = BTreeMap::new();
        for (metric, hour, value, n) in rows.lead_values {
            match metric.as_str() {
                "lead" => {
                    let day = crate::ts(hour).to_string().chars().take(10).collect();
                    by_day.entry(day).or_default().push((value, n));
                    to_lead.push((value, n));
                }
                "call" => to_call.push((value, n)),
                _ => *hist.entry(value.to_string()).or_insert(0) += n,
            }
        }
        // (sent, answered) per channel and per step; one step's channel varies (preferred,
        // fallbacks), so a step adds its channels up.
        let mut by_channel: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut by_step: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (plan, step, channel, sent, answered) in rows.touches {
            for n in [
                by_channel.entry(channel).or_default(),
                by_step.entry(format!("{plan}#{}", step + 1)).or_default(),
            ] {
                n.0 += sent;
                n.1 += answered;
            }
        }
        let rates = |m: BTreeMap<String, (i64, i64)>| -> BTreeMap<String, Rate> {
            m.into_iter().map(|(k, (s, a))| (k, rate(s, a))).collect()
        };
        Ok(Summary {
            since: crate::ts(since).to_string(),
            computed_at: crate::ts(now_ms()).to_string(),
            speed_to_lead_by_day: by_day.into_iter().map(|(d, v)| (d, pct(v))).collect(),
            speed_to_lead: pct(to_lead),
            speed_to_call: pct(to_call),
            attempts_before_contact: hist,
            answer_rate_by_channel: rates(by_channel),
            answer_rate_by_step: rates(by_step),
            overdue_tasks_by_agent: rows.overdue_by_agent.into_iter().collect(),
            leads_below_8_attempts: rows.leads_below_8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_over_a_histogram() {
        let v: Vec<(i64, i64)> = (1..=10).map(|x| (x, 1)).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[(7, 1)], 99.0), Some(7));
        // 3 leads at 2 s, 1 at 60 s: the median is 2 s, p90 60 s.
        assert_eq!(percentile(&[(2, 3), (60, 1)], 50.0), Some(2));
        assert_eq!(percentile(&[(2, 3), (60, 1)], 90.0), Some(60));
    }
}

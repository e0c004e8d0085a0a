//! The reports summary (SPEC §6): speed to lead, attempts before contact, answer rates,
//! overdue tasks, leads below the 8-attempt floor.

use crate::{Engine, Result, now_ms};
use relentless_store::Millis;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub async fn report_summary(&self, since: Millis) -> Result<Summary> {
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

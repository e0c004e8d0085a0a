//! `GET /api/v1/today`: the agent's queue in the order they should work it. Leads engaging
//! right now are pinned first (an open, click or video view in the last 15 minutes), then
//! overdue tasks, hot leads' calls, other calls, then everything else due. Each item carries
//! the lead, the rendered script and voicemail, and "attempt n of m" of its plan.

use super::iso;
use super::tasks::task_json;
use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;
use relentless_core::types::{Level, TaskKind, TaskStatus};
use relentless_store::{Lead, Task, TaskFilter};
use serde_json::{Value, json};
use std::collections::HashMap;

/// How recent an engagement must be to pin its lead at the top.
pub const ENGAGING_MS: i64 = 15 * 60_000;
/// A task more than this late is overdue, not just due.
pub const OVERDUE_MS: i64 = 15 * 60_000;
/// Tasks due within this window show in the queue.
pub const HORIZON_MS: i64 = 12 * 3_600_000;
/// The most tasks the queue shows at once.
pub const QUEUE_MAX: i64 = 100;

/// The queue's groups, in the order they are worked.
pub const GROUPS: [&str; 5] = ["engaging", "overdue", "hot_calls", "calls", "other"];

fn group(task: &Task, lead: &Lead, engaging: bool, now: i64) -> &'static str {
    if engaging {
        "engaging"
    } else if task.due_at < now - OVERDUE_MS {
        "overdue"
    } else if task.kind == TaskKind::Call && lead.level == Level::Hot {
        "hot_calls"
    } else if task.kind == TaskKind::Call {
        "calls"
    } else {
        "other"
    }
}

fn lead_card(l: &Lead) -> Value {
    json!({
        "id": l.id,
        "name": l.full_name(),
        "phone": l.phone,
        "email": l.email,
        "level": l.level,
        "stage": l.stage,
        "source": l.source,
        "timezone": l.timezone,
        "attempts": l.attempts,
        "created_at": iso(l.created_at),
        "do_not_call": l.do_not_call,
        "phone_bad": l.phone_bad,
    })
}

pub async fn today(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let now = relentless_engine::now_ms();
    let mut tx = state.engine.store.read().await?;
    let recent = tx
        .notifications_recent(user.0.id, "engagement", now - ENGAGING_MS, 50)
        .await?;
    let mut tasks = tx
        .tasks(&TaskFilter {
            assignee_id: Some(user.0.id),
            status: Some(TaskStatus::Open),
            limit: QUEUE_MAX,
            ..Default::default()
        })
        .await?;
    tasks.retain(|t| t.due_at <= now + HORIZON_MS);
    let mut ids: Vec<i64> = tasks.iter().map(|t| t.lead_id).collect();
    ids.extend(recent.iter().filter_map(|n| n.lead_id));
    ids.sort_unstable();
    ids.dedup();
    let leads: HashMap<i64, Lead> = tx
        .leads_by_ids(&ids)
        .await?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    // The newest engagement per lead: "opened your video 12 s ago — call now".
    let mut engaging: Vec<Value> = vec![];
    let mut engaged: HashMap<i64, ()> = HashMap::new();
    for n in &recent {
        let Some(lead) = n.lead_id.and_then(|id| leads.get(&id)) else {
            continue;
        };
        if engaged.insert(lead.id, ()).is_some() {
            continue;
        }
        engaging.push(json!({
            "lead": lead_card(lead),
            "kind": n.kind,
            "detail": n.detail,
            "at": iso(n.at),
            "seconds_ago": ((now - n.at) / 1000).max(0),
        }));
    }
    // "Attempt n of m": the task's step among its enrollment's touches.
    // One read of a lead's touches however many of its tasks are in the queue.
    let mut plan_pos: HashMap<i64, (usize, usize, String)> = HashMap::new();
    let mut by_lead: HashMap<i64, Vec<relentless_store::Touch>> = HashMap::new();
    for t in &tasks {
        let Some(touch_id) = t.touch_id else { continue };
        if let std::collections::hash_map::Entry::Vacant(e) = by_lead.entry(t.lead_id) {
            e.insert(tx.touches_for_lead(t.lead_id).await?);
        }
        let touches = &by_lead[&t.lead_id];
        if let Some(me) = touches.iter().find(|x| x.id == touch_id) {
            let mut mine: Vec<_> = touches
                .iter()
                .filter(|x| x.enrollment_id == me.enrollment_id)
                .collect();
            mine.sort_by_key(|x| (x.step, x.id));
            let n = mine.iter().position(|x| x.id == touch_id).unwrap_or(0) + 1;
            plan_pos.insert(t.id, (n, mine.len(), me.plan.clone()));
        }
    }
    let mut items: Vec<(usize, i64, Value)> = tasks
        .iter()
        .filter_map(|t| {
            let lead = leads.get(&t.lead_id)?;
            let g = group(t, lead, engaged.contains_key(&lead.id), now);
            let mut v = task_json(t);
            v["group"] = json!(g);
            v["lead"] = lead_card(lead);
            v["overdue_seconds"] = json!(((now - t.due_at) / 1000).max(0));
            if let Some((n, of, plan)) = plan_pos.get(&t.id) {
                v["attempt"] = json!({"n": n, "of": of, "plan": plan});
            }
            Some((
                GROUPS.iter().position(|x| *x == g).unwrap_or(9),
                t.due_at,
                v,
            ))
        })
        .collect();
    items.sort_by_key(|(g, due, _)| (*g, *due));
    Ok(Json(json!({
        "now": iso(now),
        "engaging": engaging,
        "items": items.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(),
    })))
}

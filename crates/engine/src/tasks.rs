//! The agent's tasks: listing, completing (an outcome advances the plan), escalation.

use crate::leads::{Effects, answer, count_attempt, settle_enrollments};
use crate::{Engine, Error, Result, now_ms, team_ctx};
use relentless_core::types::*;
use relentless_store::*;

pub(crate) async fn set_assignee(tx: &mut dyn Tx, task_id: i64, to: i64) -> Result<()> {
    // A task's assignee is its lead's agent; moving one open task is a one-off update.
    let _ = tx.task(task_id).await?.ok_or(Error::NotFound)?;
    tx.reassign_task(task_id, to).await?;
    Ok(())
}

impl Engine {
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let mut tx = self.store.read().await?;
        Ok(tx.tasks(filter).await?)
    }

    /// One task the user may act on (their own, or any for an admin).
    pub async fn task(&self, user: &User, task_id: i64) -> Result<Task> {
        let mut tx = self.store.read().await?;
        let task = tx.task(task_id).await?.ok_or(Error::NotFound)?;
        let lead = tx.lead(task.lead_id).await?.ok_or(Error::NotFound)?;
        if user.role != Role::Admin
            && task.assignee_id != Some(user.id)
            && lead.assigned_to != Some(user.id)
        {
            return Err(Error::NotFound);
        }
        Ok(task)
    }

    /// Completes a task with an outcome. A plan's call or video task becomes an attempt and
    /// its touch `done`; `connected` is an answer; `bad_number` flags the phone.
    pub async fn complete_task(
        &self,
        user: &User,
        task_id: i64,
        outcome: Outcome,
        note: Option<String>,
    ) -> Result<Task> {
        let now = now_ms();
        let mut tx = self.store.write().await?;
        let team = team_ctx(tx.as_mut()).await?;
        let task = tx.task(task_id).await?.ok_or(Error::NotFound)?;
        let mut lead = tx.lead(task.lead_id).await?.ok_or(Error::NotFound)?;
        if user.role != Role::Admin
            && task.assignee_id != Some(user.id)
            && lead.assigned_to != Some(user.id)
        {
            return Err(Error::NotFound);
        }
        if task.status != TaskStatus::Open {
            return Err(Error::Conflict(format!(
                "the task is already {}",
                task.status
            )));
        }
        let mut fx = Effects::default();
        tx.task_complete(
            task_id,
            TaskStatus::Done,
            Some(outcome.as_str()),
            note.as_deref(),
            now,
        )
        .await?;
        let outreach = matches!(task.kind, TaskKind::Call | TaskKind::Video);
        if outreach {
            count_attempt(&mut lead, now, task.kind == TaskKind::Call);
        }
        if outcome == Outcome::BadNumber {
            lead.phone_bad = true;
        }
        lead.updated_at = now;
        tx.lead_save(&lead).await?;
        let detail = format!(
            "{} task done: {}{}",
            task.kind.as_str().replace('_', " "),
            outcome.as_str().replace('_', " "),
            note.as_deref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
        tx.activity_insert(&NewActivity {
            lead_id: lead.id,
            kind: format!("{}_logged", task.kind),
            detail,
            data: Some(serde_json::json!({"task_id": task_id, "outcome": outcome.as_str()})),
            actor_id: Some(user.id),
            at: now,
        })
        .await?;
        if let Some(touch_id) = task.touch_id
            && let Some(t) = tx.touch(touch_id).await?
            && t.status == TouchStatus::Scheduled
        {
            tx.touch_settle(
                touch_id,
                TouchStatus::Done,
                None,
                outreach.then_some(lead.attempts),
                now,
            )
            .await?;
            settle_enrollments(tx.as_mut(), &team, &[(t.enrollment_id, t.lead_id)], now).await?;
        }
        if outcome == Outcome::Connected && task.kind != TaskKind::Reply {
            answer(
                tx.as_mut(),
                &team,
                &mut lead,
                Channel::Call,
                "connected on a call",
                now,
                &mut fx,
            )
            .await?;
        }
        tx.leads_refresh_next(&[lead.id]).await?;
        let task = tx.task(task_id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        fx.wake = true;
        self.apply_effects(fx);
        Ok(task)
    }
}

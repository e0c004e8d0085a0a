//! The plans and message templates shipped with Relentless (SPEC §4), compiled into the
//! binary from the readable files under `plans/` at the workspace root. They are data, not
//! code: the app seeds them into the database and agents edit them there.
//!
//! - `plans/<slug>.toml`: a plan (see [`crate::plan`]).
//! - `plans/templates/<slug>.toml`: one message template (see [`TemplateSpec`]).

use crate::plan::Plan;
use crate::types::Channel;
use serde::{Deserialize, Serialize};

/// One shipped file: its path under `plans/` and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinFile {
    pub name: &'static str,
    pub text: &'static str,
}

static PLAN_FILES: &[BuiltinFile] = &[
    BuiltinFile {
        name: "speed-to-lead.toml",
        text: include_str!("../../../plans/speed-to-lead.toml"),
    },
    BuiltinFile {
        name: "relentless-21.toml",
        text: include_str!("../../../plans/relentless-21.toml"),
    },
    BuiltinFile {
        name: "cold-8.toml",
        text: include_str!("../../../plans/cold-8.toml"),
    },
    BuiltinFile {
        name: "nurture.toml",
        text: include_str!("../../../plans/nurture.toml"),
    },
    BuiltinFile {
        name: "meeting-follow-up.toml",
        text: include_str!("../../../plans/meeting-follow-up.toml"),
    },
];

static TEMPLATE_FILES: &[BuiltinFile] = &[
    BuiltinFile {
        name: "templates/speed-to-lead-text.toml",
        text: include_str!("../../../plans/templates/speed-to-lead-text.toml"),
    },
    BuiltinFile {
        name: "templates/speed-to-lead-email.toml",
        text: include_str!("../../../plans/templates/speed-to-lead-email.toml"),
    },
    BuiltinFile {
        name: "templates/speed-to-lead-call.toml",
        text: include_str!("../../../plans/templates/speed-to-lead-call.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d0-text.toml",
        text: include_str!("../../../plans/templates/r21-d0-text.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d0-call.toml",
        text: include_str!("../../../plans/templates/r21-d0-call.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d0-email.toml",
        text: include_str!("../../../plans/templates/r21-d0-email.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d1-call.toml",
        text: include_str!("../../../plans/templates/r21-d1-call.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d1-text.toml",
        text: include_str!("../../../plans/templates/r21-d1-text.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d1-text-fallback.toml",
        text: include_str!("../../../plans/templates/r21-d1-text-fallback.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d2-email.toml",
        text: include_str!("../../../plans/templates/r21-d2-email.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d3-call.toml",
        text: include_str!("../../../plans/templates/r21-d3-call.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d5-text.toml",
        text: include_str!("../../../plans/templates/r21-d5-text.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d5-text-fallback.toml",
        text: include_str!("../../../plans/templates/r21-d5-text-fallback.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d7-email.toml",
        text: include_str!("../../../plans/templates/r21-d7-email.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d10-call.toml",
        text: include_str!("../../../plans/templates/r21-d10-call.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d14-text.toml",
        text: include_str!("../../../plans/templates/r21-d14-text.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d14-text-fallback.toml",
        text: include_str!("../../../plans/templates/r21-d14-text-fallback.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d17-email.toml",
        text: include_str!("../../../plans/templates/r21-d17-email.toml"),
    },
    BuiltinFile {
        name: "templates/r21-d21-video.toml",
        text: include_str!("../../../plans/templates/r21-d21-video.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d0-text.toml",
        text: include_str!("../../../plans/templates/cold-d0-text.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d0-email.toml",
        text: include_str!("../../../plans/templates/cold-d0-email.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d2-email.toml",
        text: include_str!("../../../plans/templates/cold-d2-email.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d5-call.toml",
        text: include_str!("../../../plans/templates/cold-d5-call.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d9-text.toml",
        text: include_str!("../../../plans/templates/cold-d9-text.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d9-email.toml",
        text: include_str!("../../../plans/templates/cold-d9-email.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d14-email.toml",
        text: include_str!("../../../plans/templates/cold-d14-email.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d19-call.toml",
        text: include_str!("../../../plans/templates/cold-d19-call.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d24-text.toml",
        text: include_str!("../../../plans/templates/cold-d24-text.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d24-email.toml",
        text: include_str!("../../../plans/templates/cold-d24-email.toml"),
    },
    BuiltinFile {
        name: "templates/cold-d30-email.toml",
        text: include_str!("../../../plans/templates/cold-d30-email.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m01.toml",
        text: include_str!("../../../plans/templates/nurture-m01.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m02.toml",
        text: include_str!("../../../plans/templates/nurture-m02.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m03.toml",
        text: include_str!("../../../plans/templates/nurture-m03.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m04.toml",
        text: include_str!("../../../plans/templates/nurture-m04.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m05.toml",
        text: include_str!("../../../plans/templates/nurture-m05.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m06.toml",
        text: include_str!("../../../plans/templates/nurture-m06.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m07.toml",
        text: include_str!("../../../plans/templates/nurture-m07.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m08.toml",
        text: include_str!("../../../plans/templates/nurture-m08.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m09.toml",
        text: include_str!("../../../plans/templates/nurture-m09.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m10.toml",
        text: include_str!("../../../plans/templates/nurture-m10.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m11.toml",
        text: include_str!("../../../plans/templates/nurture-m11.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-m12.toml",
        text: include_str!("../../../plans/templates/nurture-m12.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-q1.toml",
        text: include_str!("../../../plans/templates/nurture-q1.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-q2.toml",
        text: include_str!("../../../plans/templates/nurture-q2.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-q3.toml",
        text: include_str!("../../../plans/templates/nurture-q3.toml"),
    },
    BuiltinFile {
        name: "templates/nurture-q4.toml",
        text: include_str!("../../../plans/templates/nurture-q4.toml"),
    },
    BuiltinFile {
        name: "templates/meeting-thank-you.toml",
        text: include_str!("../../../plans/templates/meeting-thank-you.toml"),
    },
    BuiltinFile {
        name: "templates/meeting-call.toml",
        text: include_str!("../../../plans/templates/meeting-call.toml"),
    },
    BuiltinFile {
        name: "templates/meeting-promised-answer.toml",
        text: include_str!("../../../plans/templates/meeting-promised-answer.toml"),
    },
];

/// The built-in plan files, `speed-to-lead` first.
pub fn plan_files() -> &'static [BuiltinFile] {
    PLAN_FILES
}

/// The built-in template files, one per template, in the order the plans use them.
pub fn template_files() -> &'static [BuiltinFile] {
    TEMPLATE_FILES
}

static INTAKE_RULE_FILES: &[BuiltinFile] = &[
    BuiltinFile {
        name: "intake-rules/zillow.toml",
        text: include_str!("../../../plans/intake-rules/zillow.toml"),
    },
    BuiltinFile {
        name: "intake-rules/realtor-com.toml",
        text: include_str!("../../../plans/intake-rules/realtor-com.toml"),
    },
    BuiltinFile {
        name: "intake-rules/homes-com.toml",
        text: include_str!("../../../plans/intake-rules/homes-com.toml"),
    },
    BuiltinFile {
        name: "intake-rules/facebook-zapier.toml",
        text: include_str!("../../../plans/intake-rules/facebook-zapier.toml"),
    },
];

/// The built-in lead-notification email rules (`plans/intake-rules/<name>.toml`, one per
/// source, in the order they are tried; the format is in `docs/intake-rules.md`). They are
/// parsed by `relentless_engine::intake_email::Rule::from_toml`.
pub fn intake_rule_files() -> &'static [BuiltinFile] {
    INTAKE_RULE_FILES
}

/// The built-in plans, parsed. The tests below guarantee that every file parses.
pub fn plans() -> Vec<Plan> {
    PLAN_FILES
        .iter()
        .map(|f| {
            Plan::from_toml(f.text).unwrap_or_else(|e| panic!("built-in plan {}: {e}", f.name))
        })
        .collect()
}

/// The built-in templates, parsed. The tests below guarantee that every file parses.
pub fn templates() -> Vec<TemplateSpec> {
    TEMPLATE_FILES
        .iter()
        .map(|f| {
            TemplateSpec::from_toml(f.text)
                .unwrap_or_else(|e| panic!("built-in template {}: {e}", f.name))
        })
        .collect()
}

/// Whether a template written for `template` suits a plan step (or fallback) on `step`.
/// A `preferred` step resolves to the lead's channel at send time, so any template fits it.
pub fn template_fits(step: Channel, template: Channel) -> bool {
    step == template || step == Channel::Preferred
}

/// A message template as written in a template file (SPEC §3). `body` and `subject` use
/// minijinja merge fields (`{{ lead.first_name }}`, see `crate::template::FIELDS`). For
/// `call` templates the body is the word-for-word talk track and `voicemail` the message to
/// leave; for `video` the body is what to say on camera; for `task` what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub slug: String,
    pub channel: Channel,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<String>,
}

impl TemplateSpec {
    /// Reads and checks a template file. Errors name the field (`subject: ...`). Merge
    /// fields are checked separately, by `crate::template`.
    pub fn from_toml(text: &str) -> Result<TemplateSpec, String> {
        let spec: TemplateSpec =
            toml::from_str(text).map_err(|e| format!("template: {}", e.message()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The structural rules: a concrete channel, a subject on every email and only there,
    /// a voicemail only on calls, no empty name or body.
    pub fn validate(&self) -> Result<(), String> {
        crate::validate::slug(&self.slug).map_err(|m| format!("slug: {m}"))?;
        if self.channel == Channel::Preferred {
            return Err(
                "channel: a template is written for one channel: text, email, call, video or task"
                    .into(),
            );
        }
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.body.trim().is_empty() {
            return Err("body: must not be empty".into());
        }
        let subject = self
            .subject
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        match (self.channel, subject) {
            (Channel::Email, None) => {
                return Err("subject: an email template needs a subject".into());
            }
            (Channel::Email, Some(s)) if s.contains('\n') => {
                return Err("subject: must be one line".into());
            }
            (Channel::Email, Some(_)) | (_, None) => {}
            (c, Some(_)) => {
                return Err(format!(
                    "subject: only email templates have a subject, not {c} templates"
                ));
            }
        }
        if self.channel != Channel::Call
            && self
                .voicemail
                .as_deref()
                .is_some_and(|v| !v.trim().is_empty())
        {
            return Err(format!(
                "voicemail: only call templates have a voicemail script, not {} templates",
                self.channel
            ));
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Delay;
    use crate::types::Level;
    use jiff::SignedDuration;
    use jiff::civil::Time;
    use minijinja::{Environment, UndefinedBehavior, context};
    use std::collections::{BTreeMap, BTreeSet};

    const ALLOWED: &[&str] = crate::template::FIELDS;

    fn plan(slug: &str) -> Plan {
        plans()
            .into_iter()
            .find(|p| p.slug() == slug)
            .unwrap_or_else(|| panic!("no built-in plan {slug}"))
    }

    fn by_slug() -> BTreeMap<String, TemplateSpec> {
        templates()
            .into_iter()
            .map(|t| (t.slug.clone(), t))
            .collect()
    }

    fn day_at(day: u32, h: i8, m: i8) -> Delay {
        Delay::DayAt {
            day,
            at: Time::new(h, m, 0, 0).unwrap(),
        }
    }

    /// A context with exactly the allowed merge fields. `long` uses long-ish real values.
    fn ctx(first_name: &str, address: &str, long: bool) -> minijinja::Value {
        let (agent, agent_first, team) = if long {
            (
                "Samantha Carter-Wells",
                "Samantha",
                "Carter-Wells Home Team",
            )
        } else {
            ("Sam Carter", "Sam", "Carter Home Team")
        };
        context! {
            lead => context! {
                first_name => first_name,
                last_name => "Rivera",
                full_name => if first_name.is_empty() { "Rivera".to_string() } else { format!("{first_name} Rivera") },
                email => "jordan.rivera@example.com",
                phone => "+15125550134",
                source => "website",
                property_address => address,
            },
            agent => context! { name => agent, first_name => agent_first, phone => "+15125550101", email => "sam@example.com" },
            team => context! { name => team, address => "100 Congress Ave, Austin, TX 78701" },
        }
    }

    fn contexts() -> Vec<(&'static str, minijinja::Value)> {
        vec![
            ("no address", ctx("Jordan", "", false)),
            ("address", ctx("Jordan", "1418 Maple Ave", false)),
            ("no first name", ctx("", "", false)),
            (
                "long values",
                ctx("Alexandra", "2207 West Lake Shore Drive, Unit 4B", true),
            ),
        ]
    }

    fn strict_env() -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env
    }

    /// Every piece of a template that is rendered: (field, source).
    fn parts(t: &TemplateSpec) -> Vec<(&'static str, &str)> {
        let mut v = vec![("body", t.body.as_str())];
        if let Some(s) = &t.subject {
            v.push(("subject", s));
        }
        if let Some(s) = &t.voicemail {
            v.push(("voicemail", s));
        }
        v
    }

    fn render(t: &TemplateSpec, field: &str, src: &str, ctx: &minijinja::Value) -> String {
        strict_env()
            .render_str(src, ctx.clone())
            .unwrap_or_else(|e| panic!("{} {field}: {e:#}", t.slug))
    }

    #[test]
    fn every_plan_file_parses_and_is_named_after_its_slug() {
        assert_eq!(plan_files().len(), 5);
        let mut seen = BTreeSet::new();
        for f in plan_files() {
            let p = Plan::from_toml(f.text).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(f.name, format!("{}.toml", p.slug()));
            assert!(
                seen.insert(p.slug().to_string()),
                "duplicate plan {}",
                p.slug()
            );
            assert!(
                !p.spec.description.trim().is_empty(),
                "{} has no description",
                p.slug()
            );
            // A level's plan never leaves a lead below the attempt floor.
            assert!(p.warnings().is_empty(), "{}: {:?}", p.slug(), p.warnings());
        }
        for slug in [
            "speed-to-lead",
            "relentless-21",
            "cold-8",
            "nurture",
            "meeting-follow-up",
        ] {
            assert!(seen.contains(slug), "missing plan {slug}");
        }
    }

    #[test]
    fn every_level_has_exactly_its_plan() {
        let plans = plans();
        for level in Level::ALL {
            let owners: Vec<&str> = plans
                .iter()
                .filter(|p| p.spec.levels.contains(level))
                .map(|p| p.slug())
                .collect();
            assert_eq!(owners, vec![level.plan_slug()], "plans for {level}");
        }
        for p in &plans {
            if let Some(next) = p.spec.on_complete_level {
                assert!(
                    plans.iter().any(|q| q.spec.levels.contains(&next)),
                    "{} completes to {next}, which has no plan",
                    p.slug()
                );
            }
            for s in &p.steps {
                if let Some(c) = &s.covered_by {
                    assert!(
                        plans.iter().any(|q| q.slug() == c),
                        "{} step {} covered by unknown plan {c}",
                        p.slug(),
                        s.index
                    );
                }
            }
        }
    }

    #[test]
    fn speed_to_lead_texts_at_once_then_calls_in_five_minutes() {
        let p = plan("speed-to-lead");
        assert!(p.spec.levels.is_empty());
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].delay, Delay::After(SignedDuration::ZERO));
        assert_eq!(p.steps[0].channel, Channel::Text);
        assert_eq!(
            p.steps[0].fallback.as_ref().map(|f| f.channel),
            Some(Channel::Email)
        );
        assert_eq!(p.steps[1].delay, Delay::After(SignedDuration::from_mins(5)));
        assert_eq!(p.steps[1].channel, Channel::Call);
    }

    #[test]
    fn relentless_21_is_the_spec_table() {
        let p = plan("relentless-21");
        assert_eq!(p.spec.levels, vec![Level::Hot, Level::Warm]);
        assert_eq!(p.spec.on_complete_level, Some(Level::Nurture));
        let expected = [
            (Delay::After(SignedDuration::ZERO), Channel::Text),
            (Delay::After(SignedDuration::from_mins(5)), Channel::Call),
            (Delay::After(SignedDuration::from_hours(1)), Channel::Email),
            (day_at(1, 10, 0), Channel::Call),
            (day_at(1, 16, 0), Channel::Text),
            (day_at(2, 11, 0), Channel::Email),
            (day_at(3, 10, 0), Channel::Call),
            (day_at(5, 17, 0), Channel::Text),
            (day_at(7, 10, 0), Channel::Email),
            (day_at(10, 11, 0), Channel::Call),
            (day_at(14, 10, 0), Channel::Text),
            (day_at(17, 14, 0), Channel::Email),
            (day_at(21, 10, 0), Channel::Video),
        ];
        let actual: Vec<(Delay, Channel)> = p.steps.iter().map(|s| (s.delay, s.channel)).collect();
        assert_eq!(actual, expected);
        let covered: Vec<usize> = p
            .steps
            .iter()
            .filter(|s| s.covered_by.as_deref() == Some("speed-to-lead"))
            .map(|s| s.index)
            .collect();
        assert_eq!(covered, vec![0, 1]);
        assert!(p.steps.iter().all(|s| !s.unless_answered));
        // Later texts fall back to email, so a lead who can't be texted still gets 8 touches.
        for s in p
            .steps
            .iter()
            .filter(|s| s.channel == Channel::Text && s.covered_by.is_none())
        {
            assert_eq!(
                s.fallback.as_ref().map(|f| f.channel),
                Some(Channel::Email),
                "step {}",
                s.index
            );
        }
    }

    #[test]
    fn cold_8_is_eight_alternating_touches_within_30_days() {
        let p = plan("cold-8");
        assert_eq!(p.spec.levels, vec![Level::Cold]);
        assert_eq!(p.spec.on_complete_level, Some(Level::Nurture));
        assert_eq!(p.steps.len(), 8);
        let mut last_day = 0;
        for s in &p.steps {
            let day = match s.delay {
                Delay::After(d) => u32::try_from(d.as_secs() / 86_400).unwrap(),
                Delay::DayAt { day, at } => {
                    assert!((9..=18).contains(&at.hour()), "step {} at {at}", s.index);
                    day
                }
                Delay::Promised => panic!("cold-8 has no promised step"),
            };
            assert!(
                day <= 30 && day >= last_day,
                "step {} on day {day}",
                s.index
            );
            last_day = day;
        }
        assert_eq!(last_day, 30);
        for w in p.steps.windows(2) {
            assert_ne!(
                w[0].channel, w[1].channel,
                "steps {} and {} share a channel",
                w[0].index, w[1].index
            );
        }
        for c in [Channel::Text, Channel::Email, Channel::Call] {
            assert!(
                p.steps.iter().any(|s| s.channel == c),
                "cold-8 never uses {c}"
            );
        }
    }

    #[test]
    fn nurture_is_monthly_for_a_year_then_quarterly() {
        let p = plan("nurture");
        assert_eq!(p.spec.levels, vec![Level::Nurture]);
        assert!(p.steps.len() >= 12);
        let days: Vec<u32> = p
            .steps
            .iter()
            .map(|s| {
                assert_eq!(s.channel, Channel::Email);
                match s.delay {
                    Delay::DayAt { day, at } => {
                        assert_eq!(at, Time::new(10, 0, 0, 0).unwrap());
                        day
                    }
                    other => panic!("nurture step {} has {other:?}", s.index),
                }
            })
            .collect();
        let mut expected: Vec<u32> = (1..=12).map(|m| m * 30).collect();
        expected.extend([450, 540, 630, 720]);
        assert_eq!(days, expected);
    }

    #[test]
    fn meeting_follow_up_thanks_calls_and_keeps_the_promise() {
        let p = plan("meeting-follow-up");
        assert!(p.spec.levels.is_empty());
        let steps: Vec<(Delay, Channel, bool)> = p
            .steps
            .iter()
            .map(|s| (s.delay, s.channel, s.unless_answered))
            .collect();
        assert_eq!(
            steps,
            vec![
                (day_at(1, 9, 0), Channel::Email, false),
                (day_at(1, 14, 0), Channel::Call, true),
                (Delay::Promised, Channel::Task, false),
            ]
        );
    }

    #[test]
    fn every_referenced_template_exists_on_a_fitting_channel_and_none_is_unused() {
        let templates = by_slug();
        let mut used = BTreeSet::new();
        for p in plans() {
            for s in &p.steps {
                let mut refs = vec![(s.channel, s.template.as_str())];
                if let Some(f) = &s.fallback {
                    refs.push((f.channel, f.template.as_str()));
                }
                for (channel, slug) in refs {
                    let t = templates.get(slug).unwrap_or_else(|| {
                        panic!("{} step {} uses missing template {slug}", p.slug(), s.index)
                    });
                    assert!(
                        template_fits(channel, t.channel),
                        "{} step {}: {channel} step uses {} template {slug}",
                        p.slug(),
                        s.index,
                        t.channel
                    );
                    used.insert(slug.to_string());
                }
            }
        }
        let unused: Vec<&String> = templates.keys().filter(|k| !used.contains(*k)).collect();
        assert!(unused.is_empty(), "templates no plan uses: {unused:?}");
    }

    #[test]
    fn every_template_file_parses_and_is_well_formed() {
        let mut slugs = BTreeSet::new();
        let mut bodies = BTreeSet::new();
        for f in template_files() {
            let t = TemplateSpec::from_toml(f.text).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(f.name, format!("templates/{}.toml", t.slug));
            assert!(
                slugs.insert(t.slug.clone()),
                "duplicate template {}",
                t.slug
            );
            assert!(
                bodies.insert(t.body.clone()),
                "{} repeats another template's body",
                t.slug
            );
            assert_eq!(
                t.subject.is_some(),
                t.channel == Channel::Email,
                "{}: subject on email only",
                t.slug
            );
            assert_eq!(
                t.voicemail.is_some(),
                t.channel == Channel::Call,
                "{}: every call and only calls has a voicemail",
                t.slug
            );
            for (field, src) in parts(&t) {
                assert!(!src.contains("Dear "), "{} {field}: no 'Dear'", t.slug);
                let lower = src.to_lowercase();
                assert!(
                    !lower.contains("unsubscribe") && !src.contains("STOP"),
                    "{} {field}: the engine adds opt-out text",
                    t.slug
                );
            }
        }
        assert_eq!(slugs.len(), template_files().len());
    }

    #[test]
    fn templates_use_only_the_allowed_merge_fields() {
        let env = strict_env();
        for t in templates() {
            for (field, src) in parts(&t) {
                let tmpl = env
                    .template_from_str(src)
                    .unwrap_or_else(|e| panic!("{} {field}: {e:#}", t.slug));
                for var in tmpl.undeclared_variables(true) {
                    assert!(
                        ALLOWED.contains(&var.as_str()),
                        "{} {field} uses unknown merge field {var}",
                        t.slug
                    );
                }
            }
        }
    }

    #[test]
    fn every_template_renders_strictly_with_and_without_an_address() {
        for t in templates() {
            for (case, ctx) in contexts() {
                for (field, src) in parts(&t) {
                    let out = render(&t, field, src, &ctx);
                    for leftover in ["{{", "}}", "{%", "%}"] {
                        assert!(
                            !out.contains(leftover),
                            "{} {field} ({case}) leaves {leftover}: {out}",
                            t.slug
                        );
                    }
                    // A field that came out empty leaves a double space or a space before punctuation
                    // ("about ." / "Hi ,"); an ellipsis in a talk track is a pause, not a gap.
                    let plain = out.replace(" ...", "");
                    assert!(
                        !plain.contains("  ") && !plain.contains(" ,") && !plain.contains(" ."),
                        "{} {field} ({case}) has a gap: {out}",
                        t.slug
                    );
                    assert!(
                        !out.contains("about ."),
                        "{} {field} ({case}): {out}",
                        t.slug
                    );
                }
            }
        }
    }

    #[test]
    fn texts_are_short_and_plain() {
        for t in templates()
            .into_iter()
            .filter(|t| t.channel == Channel::Text)
        {
            // Plain ASCII keeps an SMS in the GSM-7 alphabet: 160 characters a segment, not 70.
            assert!(t.body.is_ascii(), "{} has characters outside GSM-7", t.slug);
            for (case, ctx) in contexts() {
                let out = render(&t, "body", &t.body, &ctx);
                assert!(
                    out.len() < 300,
                    "{} ({case}) is {} characters: {out}",
                    t.slug,
                    out.len()
                );
                assert!(!out.contains('\n'), "{} ({case}) is one paragraph", t.slug);
            }
        }
    }

    #[test]
    fn emails_are_short_and_signed() {
        for t in templates()
            .into_iter()
            .filter(|t| t.channel == Channel::Email)
        {
            let ctx = ctx("Jordan", "1418 Maple Ave", false);
            let subject = render(&t, "subject", t.subject.as_deref().unwrap(), &ctx);
            assert!(
                subject.chars().count() <= 70,
                "{} subject is long: {subject}",
                t.slug
            );
            let body = render(&t, "body", &t.body, &ctx);
            assert!(
                body.starts_with("Hi Jordan,"),
                "{} greets the lead: {body}",
                t.slug
            );
            let lines = body.lines().filter(|l| !l.trim().is_empty()).count();
            assert!((5..=14).contains(&lines), "{} has {lines} lines", t.slug);
            let last = body.lines().rev().take(3).collect::<Vec<_>>();
            assert!(
                last.iter().any(|l| l.contains("Sam Carter")),
                "{} is signed by the agent: {body}",
                t.slug
            );
        }
    }

    #[test]
    fn call_scripts_have_every_part_and_a_short_voicemail() {
        for t in templates()
            .into_iter()
            .filter(|t| t.channel == Channel::Call)
        {
            for part in [
                "OPENER",
                "REASON",
                "QUESTION",
                "JUST LOOKING",
                "APPOINTMENT",
            ] {
                assert!(t.body.contains(part), "{} talk track has no {part}", t.slug);
            }
            for (case, ctx) in contexts() {
                let vm = render(&t, "voicemail", t.voicemail.as_deref().unwrap(), &ctx);
                // About 150 spoken words a minute: 30 seconds is 75 words.
                let words = vm.split_whitespace().count();
                assert!(
                    words <= 75,
                    "{} voicemail ({case}) is {words} words",
                    t.slug
                );
                assert!(
                    vm.contains("+15125550101"),
                    "{} voicemail leaves the agent's number",
                    t.slug
                );
            }
        }
    }

    #[test]
    fn video_script_fits_in_a_minute() {
        for t in templates()
            .into_iter()
            .filter(|t| t.channel == Channel::Video)
        {
            let out = render(&t, "body", &t.body, &ctx("Jordan", "1418 Maple Ave", false));
            let said = out
                .split("SAY")
                .nth(1)
                .expect("a SAY section")
                .split("SEND WITH")
                .next()
                .unwrap();
            let words = said.split_whitespace().count();
            assert!((50..=150).contains(&words), "{} says {words} words", t.slug);
        }
    }

    #[test]
    fn from_toml_refuses_bad_templates() {
        let ok = "slug = 'a'\nchannel = 'text'\nname = 'A'\nbody = 'Hi'\n";
        assert!(TemplateSpec::from_toml(ok).is_ok());
        let e = TemplateSpec::from_toml("slug = 'a'\nchannel = 'email'\nname = 'A'\nbody = 'Hi'\n")
            .unwrap_err();
        assert!(e.starts_with("subject"), "{e}");
        let e =
            TemplateSpec::from_toml("slug = 'a'\nchannel = 'preferred'\nname = 'A'\nbody = 'Hi'\n")
                .unwrap_err();
        assert!(e.starts_with("channel"), "{e}");
        let e = TemplateSpec::from_toml(
            "slug = 'a'\nchannel = 'text'\nname = 'A'\nbody = 'Hi'\nsubject = 'S'\n",
        )
        .unwrap_err();
        assert!(e.starts_with("subject"), "{e}");
        let e = TemplateSpec::from_toml(
            "slug = 'a'\nchannel = 'text'\nname = 'A'\nbody = 'Hi'\nvoicemail = 'V'\n",
        )
        .unwrap_err();
        assert!(e.starts_with("voicemail"), "{e}");
        let e =
            TemplateSpec::from_toml("slug = 'A B'\nchannel = 'text'\nname = 'A'\nbody = 'Hi'\n")
                .unwrap_err();
        assert!(e.starts_with("slug"), "{e}");
        assert!(TemplateSpec::from_toml(&format!("{ok}colour = 'red'\n")).is_err());
        assert!(
            TemplateSpec::from_toml("slug = 'a'\nchannel = 'fax'\nname = 'A'\nbody = 'Hi'\n")
                .is_err()
        );
    }

    #[test]
    fn template_round_trips_through_toml() {
        for t in templates() {
            assert_eq!(TemplateSpec::from_toml(&t.to_toml()).unwrap(), t);
        }
    }
}

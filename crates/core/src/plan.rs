//! The plan model: a named, versioned list of steps, read from TOML files (SPEC §3, §4).
//!
//! A step's timing is one of:
//! - `after = "+5m"`: a fixed delay after the enrollment's start (units `m`, `h`, `d`);
//! - `day = 2, at = "11:00"`: 11:00 local on the second calendar day after the start's local date;
//! - `at = "promised"`: the moment the agent promised the lead an answer (meeting follow-up).

use crate::types::{Channel, Level};
use jiff::SignedDuration;
use jiff::civil::Time;
use serde::{Deserialize, Serialize};

/// When a step falls due, relative to the enrollment's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// A fixed duration after the start (never negative).
    After(SignedDuration),
    /// A local wall-clock time on the `day`-th calendar day after the start's local date.
    DayAt { day: u32, at: Time },
    /// The instant the agent promised an answer, when one was given.
    Promised,
}

/// A fallback used when the step's own channel is blocked for the lead (no phone, opted out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    pub channel: Channel,
    pub template: String,
}

/// One step as written in a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub channel: Channel,
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// When this plan starts together with the named plan (a brand-new lead gets
    /// `speed-to-lead` first), this step is already covered by it and is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<String>,
    /// Only when the lead has not answered yet (`meeting-follow-up`'s call).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unless_answered: bool,
}

/// A plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "one")]
    pub version: u32,
    /// The levels this plan is the follow-up for (a "level's plan").
    #[serde(default)]
    pub levels: Vec<Level>,
    /// The level a lead moves to when it finishes this plan without answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete_level: Option<Level>,
    pub steps: Vec<StepSpec>,
}

fn one() -> u32 {
    1
}

/// A validated step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub index: usize,
    pub delay: Delay,
    pub channel: Channel,
    pub template: String,
    pub fallback: Option<Fallback>,
    pub covered_by: Option<String>,
    pub unless_answered: bool,
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub spec: PlanSpec,
    pub steps: Vec<Step>,
}

/// A problem with a plan, naming the field (`steps[3].at`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanError {
    pub field: String,
    pub message: String,
}

fn perr(field: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        field: field.into(),
        message: message.into(),
    }
}

/// The fewest attempts a lead's follow-up may end with (SPEC §5.6).
pub const ATTEMPT_FLOOR: usize = 8;

/// Parses `HH:MM` (24-hour).
pub fn parse_local_time(s: &str) -> Result<Time, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not a time like 09:30"))?;
    let h: i8 = h
        .parse()
        .map_err(|_| format!("'{s}' is not a time like 09:30"))?;
    let m: i8 = m
        .parse()
        .map_err(|_| format!("'{s}' is not a time like 09:30"))?;
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return Err(format!("'{s}' is not a time of day (00:00 to 23:59)"));
    }
    Time::new(h, m, 0, 0).map_err(|e| e.to_string())
}

/// Parses `+5m`, `+1h`, `+2d`, `+90s` or `+0m`.
pub fn parse_relative(s: &str) -> Result<SignedDuration, String> {
    let t = s.trim();
    let body = t
        .strip_prefix('+')
        .ok_or_else(|| format!("'{s}' must start with + (like +5m)"))?;
    let (num, unit) = body.split_at(
        body.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len()),
    );
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a delay like +5m, +1h or +2d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}' has no unit: use s, m, h or d (like +5m)")),
    };
    if n.checked_mul(secs).is_none_or(|v| v > 10 * 365 * 86_400) {
        return Err(format!("'{s}' is more than ten years"));
    }
    Ok(SignedDuration::from_secs(n * secs))
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn from_toml(text: &str) -> Result<Plan, PlanError> {
        let spec: PlanSpec = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            perr("plan", msg)
        })?;
        Plan::from_spec(spec)
    }

    /// Validates a plan; every step must have exactly one kind of timing.
    pub fn from_spec(spec: PlanSpec) -> Result<Plan, PlanError> {
        crate::validate::slug(&spec.slug).map_err(|m| perr("slug", m))?;
        if spec.name.trim().is_empty() {
            return Err(perr("name", "must not be empty"));
        }
        if spec.steps.is_empty() {
            return Err(perr("steps", "a plan needs at least one step"));
        }
        if spec.steps.len() > 200 {
            return Err(perr("steps", "a plan has at most 200 steps"));
        }
        let mut steps = Vec::with_capacity(spec.steps.len());
        for (i, s) in spec.steps.iter().enumerate() {
            let f = |name: &str| format!("steps[{i}].{name}");
            let delay = match (&s.after, &s.at, s.day) {
                (Some(after), None, None | Some(0)) => {
                    Delay::After(parse_relative(after).map_err(|m| perr(f("after"), m))?)
                }
                (Some(_), Some(_), _) => {
                    return Err(perr(
                        f("at"),
                        "give either `after` or `day` + `at`, not both",
                    ));
                }
                (Some(_), None, Some(_)) => {
                    return Err(perr(
                        f("day"),
                        "`after` counts from the start; use day = 0 or leave day out",
                    ));
                }
                (None, Some(at), day) if at.trim() == "promised" => {
                    if day.is_some() {
                        return Err(perr(f("day"), "`at = \"promised\"` takes no day"));
                    }
                    Delay::Promised
                }
                (None, Some(at), day) => {
                    let at = parse_local_time(at).map_err(|m| perr(f("at"), m))?;
                    let day = day.unwrap_or(0);
                    if day > 3660 {
                        return Err(perr(f("day"), "must be at most 3660 (ten years)"));
                    }
                    Delay::DayAt { day, at }
                }
                (None, None, _) => {
                    return Err(perr(
                        f("at"),
                        "a step needs `after = \"+5m\"` or `day` + `at = \"09:00\"`",
                    ));
                }
            };
            crate::validate::slug(&s.template).map_err(|m| perr(f("template"), m))?;
            if let Some(fb) = &s.fallback {
                crate::validate::slug(&fb.template).map_err(|m| perr(f("fallback.template"), m))?;
                if fb.channel == Channel::Preferred {
                    return Err(perr(
                        f("fallback.channel"),
                        "a fallback names a concrete channel",
                    ));
                }
            }
            steps.push(Step {
                index: i,
                delay,
                channel: s.channel,
                template: s.template.clone(),
                fallback: s.fallback.clone(),
                covered_by: s.covered_by.clone(),
                unless_answered: s.unless_answered,
            });
        }
        Ok(Plan { spec, steps })
    }

    pub fn slug(&self) -> &str {
        &self.spec.slug
    }

    /// Every template slug the plan refers to.
    pub fn template_slugs(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().flat_map(|s| {
            std::iter::once(s.template.as_str())
                .chain(s.fallback.as_ref().map(|f| f.template.as_str()))
        })
    }

    /// Warnings that do not stop a save: a level's plan with fewer than 8 touches (SPEC §5.6).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.spec.levels.is_empty() && self.steps.len() < ATTEMPT_FLOOR {
            w.push(format!(
                "this plan is the follow-up for {} leads but has {} touches; leads need at least {ATTEMPT_FLOOR} attempts, so nurture steps will be added until they have {ATTEMPT_FLOOR}",
                self.spec.levels.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("/"),
                self.steps.len()
            ));
        }
        w
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.spec).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_of_timing() {
        let p = Plan::from_toml(
            r#"
slug = "t"
name = "T"
[[steps]]
after = "+5m"
channel = "text"
template = "a"
[[steps]]
day = 2
at = "11:00"
channel = "email"
template = "b"
[[steps]]
at = "promised"
channel = "task"
template = "c"
"#,
        )
        .unwrap();
        assert_eq!(p.steps[0].delay, Delay::After(SignedDuration::from_mins(5)));
        assert_eq!(
            p.steps[1].delay,
            Delay::DayAt {
                day: 2,
                at: Time::new(11, 0, 0, 0).unwrap()
            }
        );
        assert_eq!(p.steps[2].delay, Delay::Promised);
    }

    #[test]
    fn impossible_time_names_the_step() {
        let e = Plan::from_toml(
            "slug='t'\nname='T'\n[[steps]]\nday=1\nat='25:00'\nchannel='call'\ntemplate='a'\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "steps[0].at");
        assert!(e.message.contains("25:00"), "{e}");
        let e = Plan::from_toml(
            "slug='t'\nname='T'\n[[steps]]\nafter='5m'\nchannel='call'\ntemplate='a'\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "steps[0].after");
    }

    #[test]
    fn unknown_channel_and_keys_are_refused() {
        assert!(
            Plan::from_toml(
                "slug='t'\nname='T'\n[[steps]]\nafter='+5m'\nchannel='fax'\ntemplate='a'\n"
            )
            .is_err()
        );
        assert!(Plan::from_toml("slug='t'\nname='T'\n[[steps]]\nafter='+5m'\nchannel='text'\ntemplate='a'\ncolour='red'\n").is_err());
    }

    #[test]
    fn short_level_plan_warns() {
        let p = Plan::from_toml("slug='t'\nname='T'\nlevels=['hot']\n[[steps]]\nafter='+5m'\nchannel='call'\ntemplate='a'\n").unwrap();
        assert_eq!(p.warnings().len(), 1);
    }

    #[test]
    fn relative_delays() {
        assert_eq!(
            parse_relative("+1h").unwrap(),
            SignedDuration::from_hours(1)
        );
        assert_eq!(parse_relative("+0m").unwrap(), SignedDuration::ZERO);
        assert!(parse_relative("+99999999999999d").is_err());
        assert!(parse_relative("-5m").is_err());
    }
}

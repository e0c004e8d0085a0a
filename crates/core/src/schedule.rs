//! Schedule math: when a plan step falls due, and the sending window (SPEC §4, §5.1).
//!
//! Everything here works on absolute instants ([`Timestamp`], UTC) and the recipient's
//! [`TimeZone`]; the window itself is written in the recipient's local wall-clock time.
//!
//! - [`step_due`] turns a step's [`Delay`] into the instant it was planned for;
//! - [`is_open`] / [`next_open`] answer "may a windowed touch go out now?" and "when is the
//!   next moment it may?";
//! - [`plan_touches`] does both for a whole plan: each step is computed from the start on its
//!   own and then moved into the window on its own, so a moved step never shifts later ones.
//!
//! ## Time-zone rules (DST and friends)
//!
//! - Openness is decided in **local terms**: an instant is open when its local date is not a
//!   holiday, that weekday is not closed, and its local wall-clock time lies in the day's
//!   half-open window `[start, end)`. In a fall-back fold, a local time that occurs twice is
//!   open on both occurrences if it is inside the window.
//! - [`next_open`] returns the *earliest* open instant at or after `t`. When the window's start
//!   falls in a spring-forward gap, that is the first instant after the gap (the transition
//!   itself: at 02:00 EST → 03:00 EDT, a window opening at 02:30 opens at 03:00 EDT, the
//!   first real instant whose local time is past 02:30). When the start occurs twice (fold),
//!   the first occurrence. Local dates that do not exist at all (Pacific/Apia skipped
//!   2011-12-30) simply have no window.
//! - [`step_due`] for `day N at HH:MM` uses jiff's "compatible" disambiguation: a local time
//!   in a gap is pushed forward by the gap's length (02:30 → 03:30 on a one-hour gap), and
//!   a local time in a fold takes its earlier occurrence.

use crate::plan::{Delay, Plan, parse_local_time};
use crate::types::Channel;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How many days ahead [`next_open`] looks for an opening before giving up.
pub const SEARCH_DAYS: i64 = 400;

/// Every UTC offset jiff supports is strictly within ±26 hours.
const MAX_OFFSET: SignedDuration = SignedDuration::from_hours(26);

// ---------------------------------------------------------------------------------------------
// DayWindow
// ---------------------------------------------------------------------------------------------

/// One day's sending window: the half-open local interval `[start, end)`, `start < end`.
///
/// Written `{"start":"08:00","end":"21:00"}` (24-hour `HH:MM`, whole minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DayWindowRepr", into = "DayWindowRepr")]
pub struct DayWindow {
    pub start: Time,
    pub end: Time,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayWindowRepr {
    start: String,
    end: String,
}

impl DayWindow {
    /// A window from `start` (inclusive) to `end` (exclusive). Both must be whole minutes and
    /// `start` must come before `end`.
    pub fn new(start: Time, end: Time) -> Result<Self, String> {
        for (name, t) in [("start", start), ("end", end)] {
            if t.second() != 0 || t.subsec_nanosecond() != 0 {
                return Err(format!(
                    "{name}: window times are whole minutes (like 08:00)"
                ));
            }
        }
        if start >= end {
            return Err(format!(
                "the window must start before it ends (start {}, end {})",
                hhmm(start),
                hhmm(end)
            ));
        }
        Ok(DayWindow { start, end })
    }

    /// Parses a window from two `HH:MM` strings.
    pub fn parse(start: &str, end: &str) -> Result<Self, String> {
        let s = parse_local_time(start).map_err(|m| format!("start: {m}"))?;
        let e = parse_local_time(end).map_err(|m| format!("end: {m}"))?;
        DayWindow::new(s, e)
    }

    /// 08:00–21:00, the default window (SPEC §3).
    pub fn standard() -> Self {
        DayWindow {
            start: Time::constant(8, 0, 0, 0),
            end: Time::constant(21, 0, 0, 0),
        }
    }

    /// Whether the local time `t` lies in `[start, end)`.
    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }

    /// The stricter of both: the later start and the earlier end; `None` when they do not
    /// overlap.
    pub fn intersect(&self, other: &DayWindow) -> Option<DayWindow> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(DayWindow { start, end })
    }
}

impl fmt::Display for DayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", hhmm(self.start), hhmm(self.end))
    }
}

fn hhmm(t: Time) -> String {
    t.strftime("%H:%M").to_string()
}

impl TryFrom<DayWindowRepr> for DayWindow {
    type Error = String;
    fn try_from(r: DayWindowRepr) -> Result<Self, String> {
        DayWindow::parse(&r.start, &r.end)
    }
}

impl From<DayWindow> for DayWindowRepr {
    fn from(w: DayWindow) -> Self {
        DayWindowRepr {
            start: hhmm(w.start),
            end: hhmm(w.end),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DayOfWeek
// ---------------------------------------------------------------------------------------------

/// A weekday as a map key (jiff's [`Weekday`] is not ordered). Written in lowercase
/// (`"sunday"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl DayOfWeek {
    pub const ALL: [DayOfWeek; 7] = [
        DayOfWeek::Monday,
        DayOfWeek::Tuesday,
        DayOfWeek::Wednesday,
        DayOfWeek::Thursday,
        DayOfWeek::Friday,
        DayOfWeek::Saturday,
        DayOfWeek::Sunday,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DayOfWeek::Monday => "monday",
            DayOfWeek::Tuesday => "tuesday",
            DayOfWeek::Wednesday => "wednesday",
            DayOfWeek::Thursday => "thursday",
            DayOfWeek::Friday => "friday",
            DayOfWeek::Saturday => "saturday",
            DayOfWeek::Sunday => "sunday",
        }
    }
}

impl From<Weekday> for DayOfWeek {
    fn from(w: Weekday) -> Self {
        DayOfWeek::ALL[w.to_monday_zero_offset() as usize]
    }
}

impl From<DayOfWeek> for Weekday {
    fn from(d: DayOfWeek) -> Self {
        match d {
            DayOfWeek::Monday => Weekday::Monday,
            DayOfWeek::Tuesday => Weekday::Tuesday,
            DayOfWeek::Wednesday => Weekday::Wednesday,
            DayOfWeek::Thursday => Weekday::Thursday,
            DayOfWeek::Friday => Weekday::Friday,
            DayOfWeek::Saturday => Weekday::Saturday,
            DayOfWeek::Sunday => Weekday::Sunday,
        }
    }
}

impl fmt::Display for DayOfWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Window
// ---------------------------------------------------------------------------------------------

/// A weekly sending window: `default` applies to every weekday not listed in `by_weekday`;
/// a listed weekday has its own window (`Some`) or is closed all day (`None`).
///
/// JSON: `{"start":"09:00","end":"21:00","sunday":{"start":"12:00","end":"21:00"},"saturday":null}`
/// (the default's `start`/`end` plus optional lowercase weekday keys; `null` = closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowRepr", into = "WindowRepr")]
pub struct Window {
    pub default: DayWindow,
    pub by_weekday: BTreeMap<DayOfWeek, Option<DayWindow>>,
}

impl Default for Window {
    fn default() -> Self {
        Window::standard()
    }
}

impl Window {
    /// 08:00–21:00 every day (SPEC §3's default).
    pub fn standard() -> Self {
        Window::daily(DayWindow::standard())
    }

    /// The same window every day.
    pub fn daily(w: DayWindow) -> Self {
        Window {
            default: w,
            by_weekday: BTreeMap::new(),
        }
    }

    /// Sets one weekday's window (`None` closes it); builder style.
    pub fn with_day(mut self, day: DayOfWeek, w: Option<DayWindow>) -> Self {
        self.by_weekday.insert(day, w);
        self
    }

    /// The window on a weekday; `None` when that weekday is closed.
    pub fn for_weekday(&self, day: impl Into<DayOfWeek>) -> Option<DayWindow> {
        match self.by_weekday.get(&day.into()) {
            Some(w) => *w,
            None => Some(self.default),
        }
    }

    /// Whether at least one weekday is open.
    pub fn has_open_day(&self) -> bool {
        DayOfWeek::ALL
            .iter()
            .any(|d| self.for_weekday(*d).is_some())
    }

    /// The stricter of both windows, weekday by weekday (the later start, the earlier end);
    /// a weekday on which they do not overlap, or that either closes, is closed.
    ///
    /// Weekdays whose result equals the result's default are not listed. When the two
    /// defaults do not overlap at all, `default` keeps `self.default` as a placeholder and every
    /// weekday is listed explicitly.
    pub fn intersect(&self, other: &Window) -> Window {
        let per_day: Vec<(DayOfWeek, Option<DayWindow>)> = DayOfWeek::ALL
            .iter()
            .map(|&d| {
                let w = match (self.for_weekday(d), other.for_weekday(d)) {
                    (Some(a), Some(b)) => a.intersect(&b),
                    _ => None,
                };
                (d, w)
            })
            .collect();
        match self.default.intersect(&other.default) {
            Some(default) => Window {
                default,
                by_weekday: per_day
                    .into_iter()
                    .filter(|(_, w)| *w != Some(default))
                    .collect(),
            },
            None => Window {
                default: self.default,
                by_weekday: per_day.into_iter().collect(),
            },
        }
    }
}

/// Deserializes a present key (even `null`) as `Some(..)`, so that an absent key (`None`, by
/// `#[serde(default)]`) differs from `null` (`Some(None)`: closed).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<DayWindow>>, D::Error> {
    Option::<DayWindow>::deserialize(d).map(Some)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRepr {
    start: String,
    end: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    monday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    tuesday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    wednesday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    thursday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    friday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    saturday: Option<Option<DayWindow>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    sunday: Option<Option<DayWindow>>,
}

impl TryFrom<WindowRepr> for Window {
    type Error = String;
    fn try_from(r: WindowRepr) -> Result<Self, String> {
        let default = DayWindow::parse(&r.start, &r.end)?;
        let days = [
            (DayOfWeek::Monday, r.monday),
            (DayOfWeek::Tuesday, r.tuesday),
            (DayOfWeek::Wednesday, r.wednesday),
            (DayOfWeek::Thursday, r.thursday),
            (DayOfWeek::Friday, r.friday),
            (DayOfWeek::Saturday, r.saturday),
            (DayOfWeek::Sunday, r.sunday),
        ];
        let by_weekday = days
            .into_iter()
            .filter_map(|(d, w)| w.map(|w| (d, w)))
            .collect();
        Ok(Window {
            default,
            by_weekday,
        })
    }
}

impl From<Window> for WindowRepr {
    fn from(w: Window) -> Self {
        let get = |d: DayOfWeek| w.by_weekday.get(&d).copied();
        WindowRepr {
            start: hhmm(w.default.start),
            end: hhmm(w.default.end),
            monday: get(DayOfWeek::Monday),
            tuesday: get(DayOfWeek::Tuesday),
            wednesday: get(DayOfWeek::Wednesday),
            thursday: get(DayOfWeek::Thursday),
            friday: get(DayOfWeek::Friday),
            saturday: get(DayOfWeek::Saturday),
            sunday: get(DayOfWeek::Sunday),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// The rules for one recipient: the weekly window (already narrowed for the recipient's
/// state, see [`TeamRules::for_region`]) and the holidays, as recipient-local dates on which
/// nothing windowed goes out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendingRules {
    #[serde(default)]
    pub window: Window,
    #[serde(default)]
    pub holidays: Vec<Date>,
}

impl SendingRules {
    /// 08:00–21:00 every day, no holidays.
    pub fn standard() -> Self {
        SendingRules::default()
    }

    /// Rejects rules under which nothing could ever go out (every weekday closed): with such
    /// rules [`next_open`] has nothing to find and returns its input unchanged.
    pub fn validate(&self) -> Result<(), String> {
        if !self.window.has_open_day() {
            return Err("the sending window is closed every day of the week".into());
        }
        Ok(())
    }

    /// The window on a local date: `None` on a holiday or a closed weekday.
    pub fn day_window(&self, date: Date) -> Option<DayWindow> {
        if self.holidays.contains(&date) {
            return None;
        }
        self.window.for_weekday(date.weekday())
    }
}

/// A team's window settings: its own window, stricter windows for some states or regions
/// (keys like `"TX"`, `"FL"`, matched case-insensitively), and its holidays.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRules {
    #[serde(default)]
    pub window: Window,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state_windows: BTreeMap<String, Window>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<Date>,
}

/// Normalizes a region key: trimmed, uppercase, an `US-` prefix dropped (`"us-tx"` → `"TX"`).
fn region_key(s: &str) -> String {
    let up = s.trim().to_ascii_uppercase();
    match up.strip_prefix("US-") {
        Some(rest) => rest.to_string(),
        None => up,
    }
}

/// Well-known stricter US state calling windows, ready to merge into
/// [`TeamRules::state_windows`]: Florida 08:00–20:00 every day; Texas 09:00–21:00 Monday to
/// Saturday and 12:00–21:00 on Sunday. Not a legal opinion: teams configure their own.
pub fn us_state_windows() -> BTreeMap<String, Window> {
    let t = |h: i8| Time::constant(h, 0, 0, 0);
    let mut m = BTreeMap::new();
    m.insert(
        "FL".to_string(),
        Window::daily(DayWindow {
            start: t(8),
            end: t(20),
        }),
    );
    m.insert(
        "TX".to_string(),
        Window::daily(DayWindow {
            start: t(9),
            end: t(21),
        })
        .with_day(
            DayOfWeek::Sunday,
            Some(DayWindow {
                start: t(12),
                end: t(21),
            }),
        ),
    );
    m
}

impl TeamRules {
    /// The rules for a recipient in `region` (a state like `"TX"`; `None` when unknown): the
    /// team window intersected with that region's window when one is configured, and the
    /// team's holidays.
    pub fn for_region(&self, region: Option<&str>) -> SendingRules {
        let state = region
            .map(region_key)
            .filter(|k| !k.is_empty())
            .and_then(|k| {
                self.state_windows
                    .iter()
                    .find(|(name, _)| region_key(name) == k)
                    .map(|(_, w)| w)
            });
        let window = match state {
            Some(w) => self.window.intersect(w),
            None => self.window.clone(),
        };
        SendingRules {
            window,
            holidays: self.holidays.clone(),
        }
    }

    /// Rejects a team window closed every day, and any state whose window leaves nothing open
    /// once intersected with the team's (naming the state).
    pub fn validate(&self) -> Result<(), String> {
        if !self.window.has_open_day() {
            return Err("window: the sending window is closed every day of the week".into());
        }
        for (name, w) in &self.state_windows {
            if region_key(name).is_empty() {
                return Err("state_windows: a state needs a name (like TX)".into());
            }
            if !self.window.intersect(w).has_open_day() {
                return Err(format!(
                    "state_windows.{name}: together with the team's window, nothing is ever open"
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The window in time
// ---------------------------------------------------------------------------------------------

/// Whether a windowed touch may go out at `t` for a recipient in `tz`: its local date is not a
/// holiday, the weekday is not closed, and its local time is in `[start, end)`. Decided in
/// local terms, so both occurrences of a repeated (fold) local time are treated alike.
pub fn is_open(t: Timestamp, tz: &TimeZone, rules: &SendingRules) -> bool {
    let dt = tz.to_datetime(t);
    rules
        .day_window(dt.date())
        .is_some_and(|w| w.contains(dt.time()))
}

/// Every instant whose local time in `tz` is `dt`: none in a gap, two in a fold (earlier
/// first).
fn instants_of(tz: &TimeZone, dt: DateTime) -> Vec<Timestamp> {
    let offsets = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => vec![offset],
        AmbiguousOffset::Gap { .. } => vec![],
        AmbiguousOffset::Fold { before, after } => vec![before, after],
    };
    offsets
        .into_iter()
        .filter_map(|o| o.to_timestamp(dt).ok())
        .collect()
}

/// The earliest instant `>= t` at which [`is_open`] holds.
///
/// The opening is either a day's window start (an existing local time; in a fold, its first
/// occurrence) or a time-zone transition that jumps local time into the window (a window
/// start inside a spring-forward gap opens at the end of the gap, e.g. 03:00 EDT for a
/// 02:30 start). Local dates that do not exist (Pacific/Apia, 2011-12-30) are skipped.
///
/// The search covers [`SEARCH_DAYS`] days. If nothing opens in that time (only possible with
/// rules that [`SendingRules::validate`] rejects, i.e. every weekday closed, or with an
/// absurd list of holidays), `t` is returned unchanged.
pub fn next_open(t: Timestamp, tz: &TimeZone, rules: &SendingRules) -> Timestamp {
    if is_open(t, tz, rules) {
        return t;
    }
    // Any instant >= t has a local date >= (t - 26h in UTC).date(); start a little earlier.
    let base = Offset::UTC.to_datetime(t).date();
    let first = base.checked_sub(Span::new().days(2)).unwrap_or(base);
    let last = base
        .checked_add(Span::new().days(SEARCH_DAYS + 2))
        .unwrap_or(Date::MAX);
    let horizon = t
        .checked_add(SignedDuration::from_hours(24 * (SEARCH_DAYS + 3)))
        .unwrap_or(Timestamp::MAX);

    let mut best: Option<Timestamp> = None;
    let mut day = first;
    loop {
        if let Some(b) = best {
            // The earliest instant any local time on `day` can be: stop once past the best.
            let earliest = Offset::UTC
                .to_timestamp(day.to_datetime(Time::midnight()))
                .ok()
                .and_then(|ts| ts.checked_sub(MAX_OFFSET).ok());
            if earliest.is_some_and(|e| e > b) {
                break;
            }
        }
        if let Some(w) = rules.day_window(day) {
            for c in instants_of(tz, day.to_datetime(w.start)) {
                if c >= t && best.is_none_or(|b| c < b) && is_open(c, tz, rules) {
                    best = Some(c);
                }
            }
        }
        if day >= last {
            break;
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }

    // A transition that jumps into the window (gap over the window start, or a fold back into
    // it) opens it too. `following` yields transitions strictly after `t`.
    let limit = best.unwrap_or(horizon);
    for tr in tz.following(t) {
        let ts = tr.timestamp();
        if ts >= limit {
            break;
        }
        if is_open(ts, tz, rules) {
            best = Some(ts);
            break;
        }
    }
    best.unwrap_or(t)
}

/// The instant a step with `delay` was planned for, for an enrollment started at `start` by
/// a recipient in `tz` (SPEC §4), before any move into the sending window.
///
/// - `After(d)`: `start + d`, an absolute duration (`+1h` across a DST change is still 3600 s).
/// - `DayAt { day, at }`: the local date of `start` in `tz`, plus `day` calendar days, at local
///   time `at`. DST choice (jiff's "compatible" disambiguation): a local time that does not
///   exist (spring-forward gap) is pushed forward by the gap's length (02:30 → 03:30 on a
///   one-hour gap; on Pacific/Apia's skipped 2011-12-30, 10:00 becomes 10:00 on 12-31), and a
///   local time that occurs twice (fall-back fold) takes its earlier occurrence.
/// - `Promised`: `promised`, or `None` when no promise was given.
///
/// `None` also when the result would be out of jiff's range.
pub fn step_due(
    start: Timestamp,
    tz: &TimeZone,
    delay: &Delay,
    promised: Option<Timestamp>,
) -> Option<Timestamp> {
    match *delay {
        Delay::After(d) => start.checked_add(d).ok(),
        Delay::DayAt { day, at } => {
            let span = Span::new().try_days(i64::from(day)).ok()?;
            let date = tz.to_datetime(start).date().checked_add(span).ok()?;
            tz.to_ambiguous_timestamp(date.to_datetime(at))
                .compatible()
                .ok()
        }
        Delay::Promised => promised,
    }
}

// ---------------------------------------------------------------------------------------------
// Planning a whole plan
// ---------------------------------------------------------------------------------------------

/// One step of a plan, placed in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTouch {
    /// The step's index in the plan.
    pub step: usize,
    pub channel: Channel,
    pub template: String,
    /// The instant the plan asked for ([`step_due`]).
    pub planned_at: Timestamp,
    /// When it falls due: `planned_at` moved into the sending window for windowed channels.
    pub due_at: Timestamp,
}

impl PlannedTouch {
    /// Whether the sending window moved this touch (the timeline says so, SPEC §5.1).
    pub fn moved(&self) -> bool {
        self.due_at != self.planned_at
    }
}

/// What [`plan_touches`] needs besides the plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// The enrollment's start.
    pub start: Timestamp,
    /// The recipient's time zone.
    pub tz: &'a TimeZone,
    /// The recipient's sending rules.
    pub rules: &'a SendingRules,
    /// The promised-answer instant for `at = "promised"` steps, if any.
    pub promised: Option<Timestamp>,
    /// Slugs of plans started together with this one (a new lead gets `speed-to-lead`):
    /// steps `covered_by` one of them are left out.
    pub started_with: &'a [&'a str],
    /// Channels the recipient cannot be reached on now (no phone, opted out). A step on one
    /// of them that has a fallback is laid out as its fallback: an email-only lead's
    /// speed-to-lead text becomes an email at once, not at the window's next opening.
    pub blocked: &'a [Channel],
}

/// A fixed-offset zone (`Etc/GMT+12` … `Etc/GMT-14`) whose local hour at `now` is in
/// `hours`, if one is. Tests use it to put a lead where it is day (or night) whatever time
/// they run, since the sending window decides when its texts and calls go out.
pub fn zone_with_local_hour(now: Timestamp, hours: std::ops::RangeInclusive<i8>) -> Option<String> {
    (-12..=14)
        .map(|h: i32| match h {
            0 => "Etc/GMT".to_string(),
            // POSIX-style names: `Etc/GMT-3` is three hours *ahead* of UTC.
            h if h > 0 => format!("Etc/GMT-{h}"),
            h => format!("Etc/GMT+{}", -h),
        })
        .find(|z| {
            TimeZone::get(z).is_ok_and(|tz| hours.contains(&now.to_zoned_datetime(tz).hour()))
        })
}

/// One [`PlannedTouch`] per step of `plan`, sorted by `due_at` (ties in step order).
///
/// Left out: steps `covered_by` a plan in `ctx.started_with`, `Promised` steps when no promise
/// was given, and steps whose instant is out of range. Each step's instant is computed from
/// `ctx.start` on its own ([`step_due`]) and, for a windowed channel
/// ([`Channel::is_windowed`]; `preferred` counts as windowed), moved to [`next_open`] on its
/// own: a moved step does not shift later ones. A step whose channel is in `ctx.blocked` and
/// that has a fallback not blocked itself is windowed as the fallback's channel (it will go
/// out as that).
pub fn plan_touches(plan: &Plan, ctx: &PlanContext) -> Vec<PlannedTouch> {
    let mut touches: Vec<PlannedTouch> = plan
        .steps
        .iter()
        .filter(|s| {
            s.covered_by
                .as_deref()
                .is_none_or(|c| !ctx.started_with.contains(&c))
        })
        .filter_map(|s| {
            let planned_at = step_due(ctx.start, ctx.tz, &s.delay, ctx.promised)?;
            let goes_as = match &s.fallback {
                Some(f)
                    if ctx.blocked.contains(&s.channel) && !ctx.blocked.contains(&f.channel) =>
                {
                    f.channel
                }
                _ => s.channel,
            };
            let due_at = if goes_as.is_windowed() {
                next_open(planned_at, ctx.tz, ctx.rules)
            } else {
                planned_at
            };
            Some(PlannedTouch {
                step: s.index,
                channel: s.channel,
                template: s.template.clone(),
                planned_at,
                due_at,
            })
        })
        .collect();
    touches.sort_by_key(|t| (t.due_at, t.step));
    touches
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanSpec, StepSpec};
    use jiff::civil::date;
    use proptest::prelude::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn hm(h: i8, m: i8) -> Time {
        Time::new(h, m, 0, 0).unwrap()
    }

    fn win(s: &str, e: &str) -> DayWindow {
        DayWindow::parse(s, e).unwrap()
    }

    /// The unique (or earlier) instant of a local datetime.
    fn local(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        tz.to_ambiguous_timestamp(date(y, mo, d).at(h, mi, 0, 0))
            .earlier()
            .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rules(window: Window) -> SendingRules {
        SendingRules {
            window,
            holidays: vec![],
        }
    }

    // --- serde -------------------------------------------------------------------------------

    #[test]
    fn day_window_serde() {
        let w = win("08:00", "21:00");
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"start":"08:00","end":"21:00"}"#
        );
        let back: DayWindow = serde_json::from_str(r#"{"start":"8:00","end":"21:00"}"#).unwrap();
        assert_eq!(back, w);
        let e =
            serde_json::from_str::<DayWindow>(r#"{"start":"21:00","end":"08:00"}"#).unwrap_err();
        assert!(e.to_string().contains("start before it ends"), "{e}");
        let e =
            serde_json::from_str::<DayWindow>(r#"{"start":"25:00","end":"26:00"}"#).unwrap_err();
        assert!(e.to_string().contains("start"), "{e}");
        assert!(serde_json::from_str::<DayWindow>(r#"{"start":"08:00"}"#).is_err());
        assert!(DayWindow::new(hm(9, 0), hm(9, 0)).is_err());
        assert!(DayWindow::new(Time::new(9, 0, 30, 0).unwrap(), hm(10, 0)).is_err());
    }

    #[test]
    fn window_serde() {
        let json = r#"{"start":"09:00","end":"21:00","sunday":{"start":"12:00","end":"21:00"},"saturday":null}"#;
        let w: Window = serde_json::from_str(json).unwrap();
        assert_eq!(w.default, win("09:00", "21:00"));
        assert_eq!(w.for_weekday(Weekday::Sunday), Some(win("12:00", "21:00")));
        assert_eq!(w.for_weekday(Weekday::Saturday), None);
        assert_eq!(w.for_weekday(Weekday::Monday), Some(win("09:00", "21:00")));
        let out = serde_json::to_string(&w).unwrap();
        assert_eq!(
            out,
            r#"{"start":"09:00","end":"21:00","saturday":null,"sunday":{"start":"12:00","end":"21:00"}}"#
        );
        assert_eq!(serde_json::from_str::<Window>(&out).unwrap(), w);
        assert_eq!(
            serde_json::to_string(&Window::standard()).unwrap(),
            r#"{"start":"08:00","end":"21:00"}"#
        );
        assert!(
            serde_json::from_str::<Window>(r#"{"start":"09:00","end":"21:00","sundy":null}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<Window>(
                r#"{"start":"09:00","end":"21:00","sunday":{"start":"22:00","end":"21:00"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn team_rules_serde_and_validate() {
        let json = r#"{"window":{"start":"08:00","end":"21:00"},"state_windows":{"FL":{"start":"08:00","end":"20:00"}},"holidays":["2024-12-25"]}"#;
        let t: TeamRules = serde_json::from_str(json).unwrap();
        assert_eq!(t.holidays, vec![date(2024, 12, 25)]);
        assert_eq!(serde_json::to_string(&t).unwrap(), json);
        assert!(t.validate().is_ok());
        let closed = Window::daily(win("08:00", "09:00"))
            .with_day(DayOfWeek::Monday, None)
            .with_day(DayOfWeek::Tuesday, None)
            .with_day(DayOfWeek::Wednesday, None)
            .with_day(DayOfWeek::Thursday, None)
            .with_day(DayOfWeek::Friday, None)
            .with_day(DayOfWeek::Saturday, None)
            .with_day(DayOfWeek::Sunday, None);
        assert!(rules(closed.clone()).validate().is_err());
        assert!(rules(Window::standard()).validate().is_ok());
        let bad = TeamRules {
            state_windows: [("XX".to_string(), Window::daily(win("22:00", "23:00")))].into(),
            ..TeamRules::default()
        };
        let e = bad.validate().unwrap_err();
        assert!(e.contains("XX"), "{e}");
        // Every day closed: next_open gives t back unchanged (documented).
        let t0 = ts("2024-06-10T12:00:00Z");
        assert_eq!(next_open(t0, &TimeZone::UTC, &rules(closed)), t0);
    }

    // --- intersect / regions -------------------------------------------------------------------

    #[test]
    fn intersect_is_the_stricter_per_day() {
        let team = Window::standard().with_day(DayOfWeek::Saturday, Some(win("10:00", "18:00")));
        let tx = us_state_windows()["TX"].clone();
        let w = team.intersect(&tx);
        assert_eq!(w.default, win("09:00", "21:00"));
        assert_eq!(
            w.for_weekday(Weekday::Saturday),
            Some(win("10:00", "18:00"))
        );
        assert_eq!(w.for_weekday(Weekday::Sunday), Some(win("12:00", "21:00")));
        assert_eq!(w.for_weekday(Weekday::Monday), Some(win("09:00", "21:00")));
        // A day closed in either is closed; no overlap is closed.
        let a = Window::daily(win("08:00", "12:00")).with_day(DayOfWeek::Monday, None);
        let b = Window::daily(win("09:00", "21:00"))
            .with_day(DayOfWeek::Tuesday, Some(win("13:00", "14:00")));
        let w = a.intersect(&b);
        assert_eq!(w.for_weekday(Weekday::Monday), None);
        assert_eq!(w.for_weekday(Weekday::Tuesday), None);
        assert_eq!(
            w.for_weekday(Weekday::Wednesday),
            Some(win("09:00", "12:00"))
        );
        // Disjoint defaults: every day spelled out.
        let w =
            Window::daily(win("08:00", "09:00")).intersect(&Window::daily(win("10:00", "11:00")));
        assert!(!w.has_open_day());
    }

    #[test]
    fn for_region_intersects_state_window() {
        let team = TeamRules {
            window: Window::standard(),
            state_windows: us_state_windows(),
            holidays: vec![date(2024, 7, 4)],
        };
        let fl = team.for_region(Some("fl"));
        assert_eq!(
            fl.window.for_weekday(Weekday::Monday),
            Some(win("08:00", "20:00"))
        );
        assert_eq!(fl.holidays, vec![date(2024, 7, 4)]);
        for r in ["TX", " tx ", "US-TX"] {
            let tx = team.for_region(Some(r));
            assert_eq!(
                tx.window.for_weekday(Weekday::Sunday),
                Some(win("12:00", "21:00")),
                "{r}"
            );
            assert_eq!(
                tx.window.for_weekday(Weekday::Monday),
                Some(win("09:00", "21:00")),
                "{r}"
            );
        }
        assert_eq!(team.for_region(Some("CA")).window, Window::standard());
        assert_eq!(team.for_region(None).window, Window::standard());
        assert_eq!(team.for_region(Some("")).window, Window::standard());
    }

    // --- concrete cases ------------------------------------------------------------------------

    #[test]
    fn late_night_lead_texted_at_eight() {
        let ny = tz("America/New_York");
        let start = local(&ny, 2024, 6, 10, 22, 30);
        let r = SendingRules::standard();
        assert!(!is_open(start, &ny, &r));
        let due = step_due(start, &ny, &Delay::After(SignedDuration::ZERO), None).unwrap();
        assert_eq!(due, start);
        assert_eq!(next_open(due, &ny, &r), local(&ny, 2024, 6, 11, 8, 0));
        assert_eq!(next_open(due, &ny, &r), ts("2024-06-11T12:00:00Z"));
        // Boundaries: 08:00 is open, 21:00 is not.
        assert!(is_open(local(&ny, 2024, 6, 11, 8, 0), &ny, &r));
        assert!(!is_open(local(&ny, 2024, 6, 11, 21, 0), &ny, &r));
        assert!(is_open(ts("2024-06-12T00:59:59Z"), &ny, &r));
    }

    #[test]
    fn day_at_keeps_local_time_across_dst() {
        let ny = tz("America/New_York");
        let at10 = Delay::DayAt {
            day: 1,
            at: hm(10, 0),
        };
        // Spring forward on 2024-03-10.
        let start = local(&ny, 2024, 3, 9, 12, 0);
        assert_eq!(
            step_due(start, &ny, &at10, None).unwrap(),
            ts("2024-03-10T14:00:00Z")
        );
        // Fall back on 2024-11-03.
        let start = local(&ny, 2024, 11, 2, 12, 0);
        assert_eq!(
            step_due(start, &ny, &at10, None).unwrap(),
            ts("2024-11-03T15:00:00Z")
        );
        // Day 21 from before spring forward, and over a month boundary.
        let start = local(&ny, 2024, 2, 28, 23, 59);
        let d21 = Delay::DayAt {
            day: 21,
            at: hm(10, 0),
        };
        let due = step_due(start, &ny, &d21, None).unwrap();
        assert_eq!(ny.to_datetime(due), date(2024, 3, 20).at(10, 0, 0, 0));
        // `After` is an absolute duration, DST or not.
        let start = local(&ny, 2024, 3, 10, 1, 30);
        let due = step_due(
            start,
            &ny,
            &Delay::After(SignedDuration::from_hours(1)),
            None,
        )
        .unwrap();
        assert_eq!(ny.to_datetime(due), date(2024, 3, 10).at(3, 30, 0, 0));
    }

    #[test]
    fn day_at_in_gap_and_fold() {
        let ny = tz("America/New_York");
        let start = local(&ny, 2024, 3, 9, 12, 0);
        // 02:30 does not exist on 2024-03-10: compatible → 03:30 EDT.
        let due = step_due(
            start,
            &ny,
            &Delay::DayAt {
                day: 1,
                at: hm(2, 30),
            },
            None,
        )
        .unwrap();
        assert_eq!(due, ts("2024-03-10T07:30:00Z"));
        assert_eq!(ny.to_datetime(due), date(2024, 3, 10).at(3, 30, 0, 0));
        // 01:30 happens twice on 2024-11-03: the earlier one (EDT).
        let start = local(&ny, 2024, 11, 2, 12, 0);
        let due = step_due(
            start,
            &ny,
            &Delay::DayAt {
                day: 1,
                at: hm(1, 30),
            },
            None,
        )
        .unwrap();
        assert_eq!(due, ts("2024-11-03T05:30:00Z"));
    }

    #[test]
    fn window_start_in_gap_opens_after_the_gap() {
        let ny = tz("America/New_York");
        let r = rules(Window::daily(win("02:30", "21:00")));
        let t = local(&ny, 2024, 3, 10, 1, 0);
        // The first instant whose local time is inside [02:30, 21:00) is 03:00 EDT.
        let open = next_open(t, &ny, &r);
        assert_eq!(open, ts("2024-03-10T07:00:00Z"));
        assert!(!is_open(open - SignedDuration::from_secs(1), &ny, &r));
        // On a normal day it is 02:30.
        let t = local(&ny, 2024, 3, 11, 1, 0);
        assert_eq!(
            ny.to_datetime(next_open(t, &ny, &r)),
            date(2024, 3, 11).at(2, 30, 0, 0)
        );
    }

    #[test]
    fn fold_is_judged_in_local_terms() {
        let ny = tz("America/New_York");
        // Window [01:15, 01:45): on 2024-11-03 it is open twice.
        let r = rules(Window::daily(win("01:15", "01:45")));
        let first = ts("2024-11-03T05:15:00Z"); // 01:15 EDT
        let second = ts("2024-11-03T06:15:00Z"); // 01:15 EST
        assert_eq!(next_open(ts("2024-11-03T04:00:00Z"), &ny, &r), first);
        assert!(!is_open(ts("2024-11-03T05:50:00Z"), &ny, &r)); // 01:50 EDT
        assert_eq!(next_open(ts("2024-11-03T05:50:00Z"), &ny, &r), second);
        // Window [00:30, 01:30): closes 01:30 EDT, reopens at the fold (01:00 EST) itself.
        let r = rules(Window::daily(win("00:30", "01:30")));
        assert!(!is_open(ts("2024-11-03T05:45:00Z"), &ny, &r));
        assert_eq!(
            next_open(ts("2024-11-03T05:45:00Z"), &ny, &r),
            ts("2024-11-03T06:00:00Z")
        );
    }

    #[test]
    fn apia_skipped_day() {
        let apia = tz("Pacific/Apia");
        let r = SendingRules::standard();
        // 2011-12-29 22:00 (-10): the next local date is 2011-12-31 (+14).
        let t = local(&apia, 2011, 12, 29, 22, 0);
        let open = next_open(t, &apia, &r);
        assert_eq!(apia.to_datetime(open), date(2011, 12, 31).at(8, 0, 0, 0));
        assert_eq!(open, ts("2011-12-30T18:00:00Z"));
        // A holiday on the 31st pushes it to 2012-01-01.
        let r = SendingRules {
            window: Window::standard(),
            holidays: vec![date(2011, 12, 31)],
        };
        assert_eq!(
            apia.to_datetime(next_open(t, &apia, &r)),
            date(2012, 1, 1).at(8, 0, 0, 0)
        );
        // day 1 at 10:00 lands on the missing date: pushed forward by the gap (a whole day).
        let due = step_due(
            t,
            &apia,
            &Delay::DayAt {
                day: 1,
                at: hm(10, 0),
            },
            None,
        )
        .unwrap();
        assert_eq!(apia.to_datetime(due), date(2011, 12, 31).at(10, 0, 0, 0));
    }

    #[test]
    fn texas_sunday_window() {
        let team = TeamRules {
            state_windows: us_state_windows(),
            ..TeamRules::default()
        };
        let tx = team.for_region(Some("TX"));
        let chi = tz("America/Chicago");
        // 2024-06-09 is a Sunday.
        assert_eq!(date(2024, 6, 9).weekday(), Weekday::Sunday);
        let t = local(&chi, 2024, 6, 9, 10, 0);
        assert!(!is_open(t, &chi, &tx));
        assert_eq!(next_open(t, &chi, &tx), local(&chi, 2024, 6, 9, 12, 0));
        // Saturday 08:30 → 09:00; the team's own window would have been open.
        let t = local(&chi, 2024, 6, 8, 8, 30);
        assert!(is_open(t, &chi, &team.for_region(None)));
        assert_eq!(next_open(t, &chi, &tx), local(&chi, 2024, 6, 8, 9, 0));
        // Saturday 21:30 → Sunday 12:00.
        let t = local(&chi, 2024, 6, 8, 21, 30);
        assert_eq!(next_open(t, &chi, &tx), local(&chi, 2024, 6, 9, 12, 0));
        // Florida: 20:15 is closed, next morning 08:00.
        let fl = team.for_region(Some("FL"));
        let ny = tz("America/New_York");
        let t = local(&ny, 2024, 6, 10, 20, 15);
        assert_eq!(next_open(t, &ny, &fl), local(&ny, 2024, 6, 11, 8, 0));
    }

    #[test]
    fn holidays_and_closed_days_are_skipped() {
        let ny = tz("America/New_York");
        let r = SendingRules {
            window: Window::standard(),
            holidays: vec![date(2024, 12, 25), date(2024, 12, 26)],
        };
        let t = local(&ny, 2024, 12, 24, 22, 0);
        assert_eq!(next_open(t, &ny, &r), local(&ny, 2024, 12, 27, 8, 0));
        assert!(!is_open(local(&ny, 2024, 12, 25, 12, 0), &ny, &r));
        // Sunday closed: Saturday night → Monday 08:00.
        let r = rules(Window::standard().with_day(DayOfWeek::Sunday, None));
        let t = local(&ny, 2024, 6, 8, 21, 0);
        assert_eq!(next_open(t, &ny, &r), local(&ny, 2024, 6, 10, 8, 0));
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        let lh = tz("Australia/Lord_Howe");
        // Spring forward 2024-10-06 02:00 (+10:30) → 02:30 (+11).
        let r = rules(Window::daily(win("02:10", "21:00")));
        let t = local(&lh, 2024, 10, 6, 1, 0);
        let open = next_open(t, &lh, &r);
        assert_eq!(lh.to_datetime(open), date(2024, 10, 6).at(2, 30, 0, 0));
        assert_eq!(open, ts("2024-10-05T15:30:00Z"));
        let due = step_due(
            local(&lh, 2024, 10, 5, 9, 0),
            &lh,
            &Delay::DayAt {
                day: 1,
                at: hm(2, 15),
            },
            None,
        )
        .unwrap();
        assert_eq!(lh.to_datetime(due), date(2024, 10, 6).at(2, 45, 0, 0));
        // Fall back 2024-04-07 02:00 (+11) → 01:30 (+10:30): 01:30–02:00 happens twice.
        let r = rules(Window::daily(win("01:45", "21:00")));
        let first_145 = ts("2024-04-06T14:45:00Z");
        let second_130 = ts("2024-04-06T15:00:00Z");
        let second_145 = ts("2024-04-06T15:15:00Z");
        assert_eq!(lh.to_datetime(first_145), date(2024, 4, 7).at(1, 45, 0, 0));
        assert_eq!(lh.to_datetime(second_130), date(2024, 4, 7).at(1, 30, 0, 0));
        assert!(is_open(first_145, &lh, &r));
        assert!(!is_open(second_130, &lh, &r));
        assert_eq!(next_open(second_130, &lh, &r), second_145);
        // DayAt in the fold takes the first occurrence.
        let due = step_due(
            local(&lh, 2024, 4, 6, 9, 0),
            &lh,
            &Delay::DayAt {
                day: 1,
                at: hm(1, 45),
            },
            None,
        )
        .unwrap();
        assert_eq!(due, first_145);
    }

    #[test]
    fn promised_step() {
        let t = ts("2024-06-10T12:00:00Z");
        let p = ts("2024-06-12T15:00:00Z");
        assert_eq!(
            step_due(t, &TimeZone::UTC, &Delay::Promised, Some(p)),
            Some(p)
        );
        assert_eq!(step_due(t, &TimeZone::UTC, &Delay::Promised, None), None);
    }

    // --- plans ---------------------------------------------------------------------------------

    const PLAN: &str = r#"
slug = "demo"
name = "Demo"
[[steps]]
after = "+0m"
channel = "text"
template = "hello"
covered_by = "speed-to-lead"
[[steps]]
after = "+5m"
channel = "call"
template = "call-1"
covered_by = "speed-to-lead"
[[steps]]
after = "+1h"
channel = "email"
template = "email-1"
[[steps]]
day = 1
at = "10:00"
channel = "call"
template = "call-2"
[[steps]]
day = 1
at = "07:00"
channel = "text"
template = "early"
[[steps]]
at = "promised"
channel = "task"
template = "answer"
"#;

    #[test]
    fn plan_touches_skips_covered_steps_and_moves_each_on_its_own() {
        let plan = Plan::from_toml(PLAN).unwrap();
        let ny = tz("America/New_York");
        let r = SendingRules::standard();
        let start = local(&ny, 2024, 6, 10, 22, 30);
        let ctx = PlanContext {
            start,
            tz: &ny,
            rules: &r,
            promised: None,
            started_with: &["speed-to-lead"],
            blocked: &[],
        };
        let touches = plan_touches(&plan, &ctx);
        let steps: Vec<usize> = touches.iter().map(|t| t.step).collect();
        // Steps 0 and 1 covered; step 5 has no promise. Sorted by due_at: email 23:30 (not
        // windowed), then the 07:00 text moved to 08:00, then the 10:00 call.
        assert_eq!(steps, vec![2, 4, 3]);
        assert_eq!(touches[0].due_at, local(&ny, 2024, 6, 10, 23, 30));
        assert!(!touches[0].moved());
        assert_eq!(touches[1].planned_at, local(&ny, 2024, 6, 11, 7, 0));
        assert_eq!(touches[1].due_at, local(&ny, 2024, 6, 11, 8, 0));
        assert!(touches[1].moved());
        assert_eq!(touches[1].template, "early");
        assert_eq!(touches[2].due_at, local(&ny, 2024, 6, 11, 10, 0));
        assert!(!touches[2].moved());

        // Without speed-to-lead and with a promise: every step, the +0m text and +5m call
        // moved to 08:00 (ties kept in step order), none shifting the others.
        let promised = local(&ny, 2024, 6, 12, 15, 0);
        let ctx = PlanContext {
            promised: Some(promised),
            started_with: &[],
            ..ctx
        };
        let touches = plan_touches(&plan, &ctx);
        let steps: Vec<usize> = touches.iter().map(|t| t.step).collect();
        assert_eq!(steps, vec![2, 0, 1, 4, 3, 5]);
        assert_eq!(touches[1].due_at, local(&ny, 2024, 6, 11, 8, 0));
        assert_eq!(touches[2].due_at, local(&ny, 2024, 6, 11, 8, 0));
        assert_eq!(touches[2].planned_at, start + SignedDuration::from_mins(5));
        assert_eq!(touches[5].due_at, promised);
        assert_eq!(touches[5].channel, Channel::Task);
    }

    #[test]
    fn a_blocked_step_with_a_fallback_is_laid_out_as_the_fallback() {
        let plan = Plan::from_toml(
            r#"
slug = "s"
name = "S"
[[steps]]
after = "+0m"
channel = "text"
template = "t"
fallback = { channel = "email", template = "e" }
[[steps]]
after = "+5m"
channel = "call"
template = "c"
"#,
        )
        .unwrap();
        let ny = tz("America/New_York");
        let r = SendingRules::standard();
        let start = local(&ny, 2024, 6, 10, 23, 0); // outside the window
        let ctx = |blocked| PlanContext {
            start,
            tz: &ny,
            rules: &r,
            promised: None,
            started_with: &[],
            blocked,
        };
        // Reachable by text: the text waits for 08:00.
        let t = plan_touches(&plan, &ctx(&[]));
        assert_eq!(t[0].due_at, local(&ny, 2024, 6, 11, 8, 0));
        // No phone: the text step goes as its email fallback, at once (email is not windowed).
        let t = plan_touches(&plan, &ctx(&[Channel::Text, Channel::Call]));
        assert_eq!((t[0].step, t[0].due_at), (0, start));
        assert_eq!(
            t[0].channel,
            Channel::Text,
            "the step keeps its planned channel"
        );
        // A blocked step without a fallback keeps its own window.
        assert_eq!(t[1].due_at, local(&ny, 2024, 6, 11, 8, 0));
        // Nor does a step whose fallback is blocked too (no phone, unsubscribed from email).
        let t = plan_touches(&plan, &ctx(&[Channel::Text, Channel::Call, Channel::Email]));
        assert_eq!(t[0].due_at, local(&ny, 2024, 6, 11, 8, 0));
    }

    #[test]
    fn a_zone_is_found_for_every_local_hour() {
        for now in [
            "2024-06-10T00:30:00Z",
            "2024-06-10T13:05:00Z",
            "2024-12-31T23:59:00Z",
        ] {
            let now: Timestamp = now.parse().unwrap();
            for h in 0..24 {
                let z = zone_with_local_hour(now, h..=h).expect("some zone");
                assert_eq!(now.to_zoned_datetime(tz(&z)).hour(), h, "{z} at {now}");
            }
        }
    }

    // --- properties ----------------------------------------------------------------------------

    const ZONES: &[&str] = &[
        "UTC",
        "America/New_York",
        "Europe/London",
        "Asia/Kolkata",
        "America/St_Johns",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Pacific/Apia",
        "America/Sao_Paulo",
        "Asia/Tehran",
        "Europe/Moscow",
        "America/Los_Angeles",
    ];

    /// 1990-01-01 to 2040-01-01, in seconds.
    const T_MIN: i64 = 631_152_000;
    const T_MAX: i64 = 2_208_988_800;

    fn minutes(m: u16) -> Time {
        Time::new((m / 60) as i8, (m % 60) as i8, 0, 0).unwrap()
    }

    fn day_window() -> impl Strategy<Value = DayWindow> {
        (0u16..1439)
            .prop_flat_map(|s| (Just(s), s + 1..=1439))
            .prop_map(|(s, e)| DayWindow::new(minutes(s), minutes(e)).unwrap())
    }

    fn window() -> impl Strategy<Value = Window> {
        let day = prop_oneof![
            5 => Just(None),
            1 => Just(Some(None)),
            2 => day_window().prop_map(|w| Some(Some(w))),
        ];
        (day_window(), proptest::collection::vec(day, 7))
            .prop_map(|(default, days)| Window {
                default,
                by_weekday: DayOfWeek::ALL
                    .iter()
                    .zip(days)
                    .filter_map(|(d, w)| w.map(|w| (*d, w)))
                    .collect(),
            })
            .prop_filter("some day open", |w| w.has_open_day())
    }

    /// An instant: uniform over 1990–2040, or within ±36 h of a time-zone transition.
    #[derive(Debug, Clone)]
    struct Case {
        zone: &'static str,
        t: Timestamp,
        rules: SendingRules,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            proptest::sample::select(ZONES),
            T_MIN..T_MAX,
            any::<bool>(),
            -36 * 3600i64..36 * 3600,
            window(),
            proptest::collection::vec(-3i32..20, 0..6),
        )
            .prop_map(|(zone, secs, near, jitter, window, hol)| {
                let z = tz(zone);
                let mut t = Timestamp::from_second(secs).unwrap();
                if near && let Some(tr) = z.following(t).next() {
                    t = Timestamp::from_second(tr.timestamp().as_second() + jitter).unwrap();
                }
                let today = z.to_datetime(t).date();
                let holidays = hol
                    .into_iter()
                    .map(|d| today.checked_add(Span::new().days(d)).unwrap())
                    .collect();
                Case {
                    zone,
                    t,
                    rules: SendingRules { window, holidays },
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn next_open_is_the_earliest_open_instant(c in case()) {
            let z = tz(c.zone);
            let (t, r) = (c.t, &c.rules);
            let n = next_open(t, &z, r);
            // (a) never earlier
            prop_assert!(n >= t);
            // (b) open
            prop_assert!(is_open(n, &z, r), "next_open({t}) = {n} is not open");
            // (c) open now means now
            if is_open(t, &z, r) {
                prop_assert_eq!(n, t);
            }
            // (d) minimal: just before it is closed, and closed at sampled points in [t, n)
            for back in [SignedDuration::from_secs(1), SignedDuration::from_mins(1)] {
                let before = n - back;
                if before >= t {
                    prop_assert!(!is_open(before, &z, r), "{before} is open, before next_open({t}) = {n}");
                }
            }
            let span = n.duration_since(t).as_secs();
            if span > 0 {
                // Every minute from t (coarser for long waits, at most ~2000 samples).
                let step = 60i64.max(span / 2000);
                for k in 0..=span / step {
                    let s = t + SignedDuration::from_secs(k * step);
                    if s >= n {
                        break;
                    }
                    prop_assert!(!is_open(s, &z, r), "{s} is open, before next_open({t}) = {n}");
                }
                for tr in z.following(t) {
                    if tr.timestamp() >= n { break; }
                    prop_assert!(!is_open(tr.timestamp(), &z, r));
                }
            }
            // (e) idempotent
            prop_assert_eq!(next_open(n, &z, r), n);
        }

        #[test]
        fn intersect_is_open_in_both(a in window(), b in window(), zone in proptest::sample::select(ZONES), secs in T_MIN..T_MAX) {
            let z = tz(zone);
            let t = Timestamp::from_second(secs).unwrap();
            let both = rules(a.intersect(&b));
            prop_assert_eq!(is_open(t, &z, &both), is_open(t, &z, &rules(a.clone())) && is_open(t, &z, &rules(b.clone())));
            // and agrees by weekday
            for d in DayOfWeek::ALL {
                let x = match (a.for_weekday(d), b.for_weekday(d)) {
                    (Some(x), Some(y)) => x.intersect(&y),
                    _ => None,
                };
                prop_assert_eq!(a.intersect(&b).for_weekday(d), x);
            }
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), a);
        }

        #[test]
        fn planned_touches_respect_the_window(
            c in case(),
            steps in proptest::collection::vec(
                (any::<bool>(), 0u32..40, 0u16..1440, 0u32..(3 * 24 * 60), 0usize..5),
                1..14,
            ),
        ) {
            let z = tz(c.zone);
            let channels = [Channel::Call, Channel::Text, Channel::Video, Channel::Task, Channel::Email];
            let spec = PlanSpec {
                slug: "p".into(),
                name: "P".into(),
                description: String::new(),
                version: 1,
                levels: vec![],
                on_complete_level: None,
                steps: steps
                    .iter()
                    .map(|&(day_at, day, at, after, ch)| StepSpec {
                        day: day_at.then_some(day),
                        at: day_at.then(|| format!("{:02}:{:02}", at / 60, at % 60)),
                        after: (!day_at).then(|| format!("+{after}m")),
                        channel: channels[ch],
                        template: "t".into(),
                        fallback: None,
                        covered_by: None,
                        unless_answered: false,
                    })
                    .collect(),
            };
            let plan = Plan::from_spec(spec).unwrap();
            let ctx = PlanContext { start: c.t, tz: &z, rules: &c.rules, promised: None, started_with: &[], blocked: &[] };
            let touches = plan_touches(&plan, &ctx);
            prop_assert_eq!(touches.len(), plan.steps.len());
            for w in touches.windows(2) {
                prop_assert!((w[0].due_at, w[0].step) < (w[1].due_at, w[1].step));
            }
            for t in &touches {
                let step = &plan.steps[t.step];
                prop_assert_eq!(Some(t.planned_at), step_due(c.t, &z, &step.delay, None));
                prop_assert!(t.due_at >= t.planned_at);
                if t.channel.is_windowed() {
                    prop_assert!(is_open(t.due_at, &z, &c.rules), "step {} due {} not open", t.step, t.due_at);
                    prop_assert_eq!(t.due_at, next_open(t.planned_at, &z, &c.rules));
                } else {
                    prop_assert!(!t.moved());
                }
                if let Delay::DayAt { day, at } = step.delay {
                    // The local date is the start's local date + day, unless a gap pushed it.
                    let want = z.to_datetime(c.t).date().checked_add(Span::new().days(i64::from(day))).unwrap().to_datetime(at);
                    let got = z.to_datetime(t.planned_at);
                    if !instants_of(&z, want).is_empty() {
                        prop_assert_eq!(got, want);
                        prop_assert_eq!(t.planned_at, instants_of(&z, want)[0]);
                    } else {
                        prop_assert!(got > want);
                    }
                }
            }
        }
    }
}

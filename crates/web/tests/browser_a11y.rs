//! The app on a phone and without a mouse, in a real headless Chromium: every page at 375 px
//! wide shows no sideways scrolling, gives every field and button a name, and keeps its text
//! at WCAG AA contrast (4.5:1, 3:1 for large text), measured from the computed styles; and
//! an agent works the Today queue with the keyboard alone (skip link first, a visible focus
//! ring on every stop, Enter logs the call). The plan editor's step rows are also worked
//! here: a step is added, reordered, given a bad time, and saved.

mod browser;
mod common;

use browser::*;
use common::{TestApp, day_zone};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Checks the page as it is now; returns one line per problem.
const AUDIT: &str = r#"
var problems = [];
// The phone's width: a page wider than it makes a phone zoom out (innerWidth grows too).
var width = screen.width;
function describe(e) {
  return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\s+/).join('.') : '') +
    (e.textContent ? ' "' + e.textContent.trim().slice(0, 30) + '"' : '');
}
function visible(e) {
  var s = getComputedStyle(e);
  if (s.visibility === 'hidden' || s.display === 'none') return false;
  var r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.right > 0;
}
if (!document.documentElement.lang) problems.push('the page has no lang');
if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
if (Math.max(document.documentElement.scrollWidth, window.innerWidth) > width + 1) {
  var wide = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.right > width + 1 && r.width > 0 && !e.closest('.table-wrap')) wide.push(describe(e));
  });
  problems.push('scrolls sideways: ' + Math.max(document.documentElement.scrollWidth, window.innerWidth) + ' px at ' + width + ' px, widest: ' + wide.slice(-4).join(' | '));
}
document.querySelectorAll('input, select, textarea').forEach(function (e) {
  if (e.type === 'hidden' || !visible(e)) return;
  var named = e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.closest('label') ||
    (e.id && document.querySelector('label[for="' + CSS.escape(e.id) + '"]'));
  if (!named) problems.push('a field without a label: ' + describe(e));
});
document.querySelectorAll('button, a[href], [role=button]').forEach(function (e) {
  if (!visible(e)) return;
  if (!(e.textContent.trim() || e.getAttribute('aria-label') || e.getAttribute('title')))
    problems.push('a control without a name: ' + describe(e));
});
document.querySelectorAll('img').forEach(function (e) {
  if (!e.hasAttribute('alt')) problems.push('an image without alt: ' + describe(e));
});
function rgba(s) {
  var m = /rgba?\(([^)]+)\)/.exec(s);
  if (!m) return null;
  var p = m[1].split(',').map(parseFloat);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
}
function over(top, under) {
  return { r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1 };
}
function background(e) {
  var layers = [];
  for (var n = e; n && n.nodeType === 1; n = n.parentElement) {
    var c = rgba(getComputedStyle(n).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  var out = { r: 255, g: 255, b: 255, a: 1 };
  for (var i = layers.length - 1; i >= 0; i--) out = over(layers[i], out);
  return out;
}
function opacity(e) {
  var o = 1;
  for (var n = e; n && n.nodeType === 1; n = n.parentElement) o *= parseFloat(getComputedStyle(n).opacity);
  return o;
}
function luminance(c) {
  function ch(v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
  return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
}
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
var seen = new Set();
while (walker.nextNode()) {
  var t = walker.currentNode;
  var e = t.parentElement;
  if (!t.textContent.trim() || !e || seen.has(e) || !visible(e)) continue;
  seen.add(e);
  // WCAG exempts disabled controls and text no one can see.
  if (e.closest('button:disabled, [aria-disabled=true], .sr-only, noscript, option')) continue;
  var s = getComputedStyle(e);
  var bg = background(e);
  var fg = rgba(s.color);
  fg.a *= opacity(e);
  fg = over(fg, bg);
  var l1 = luminance(fg), l2 = luminance(bg);
  var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  var size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
  var need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + describe(e) +
    ' (' + s.color + ' on rgb(' + [bg.r, bg.g, bg.b].map(Math.round).join(',') + '))');
}
return problems;
"#;

async fn audit(c: &Client, page: &str) -> Vec<String> {
    let v = js(c, AUDIT, vec![]).await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{page}: {}", p.as_str().unwrap()))
        .collect()
}

/// The focused element and whether it shows a focus ring.
async fn focused(c: &Client) -> Value {
    js(
        c,
        r#"var e = document.activeElement; var s = getComputedStyle(e);
           return {tag: e.tagName.toLowerCase(), cls: e.className || '', id: e.id || '',
             outcome: e.getAttribute('data-outcome'), text: (e.textContent || '').trim().slice(0, 40),
             ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none'};"#,
        vec![],
    )
    .await
}

async fn press(c: &Client, key: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
}

const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_works_at_375_px_by_keyboard_with_names_and_contrast() {
    with_browser("browser_a11y", "phone:375,812", &[], phone_and_keyboard).await;
}

async fn phone_and_keyboard(c: Client) {
    let app = TestApp::spawn().await;
    app.add_user("ada@example.com", "Ada Admin", "admin", PASSWORD)
        .await;
    let (s, intake) = app
        .post(&app.admin, "/api/v1/intakes", json!({"source": "Website"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{intake}");
    let (s, lead) = app
        .post(
            &app.admin,
            "/api/v1/leads",
            json!({"first_name": "Rosa", "last_name": "Delgado-Fitzgerald", "phone": "+15125550142",
                   "email": "rosa.delgado-fitzgerald.long.address@example.com", "timezone": day_zone(),
                   "assigned_to": "ada@example.com", "source": "Website",
                   "property_address": "1234 Very Long Boulevard Name, Apartment 56, Springfield"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lead}");
    let lead_id = lead["id"].as_i64().unwrap();
    app.make_speed_to_lead_call_due(lead_id).await;
    let call = app
        .wait_task(lead_id, "open", |t| t["kind"] == "call")
        .await;

    // The sign-in page, then every page of the app, at phone width.
    c.goto(&format!("{}/login", app.base)).await.unwrap();
    wait_for(&c, "#password").await;
    let mut problems = audit(&c, "/login").await;
    // The audit sees what it is for: faint text, a field without a label, a wide block.
    let planted = js(
        &c,
        // Styles set through the DOM: the app's Content-Security-Policy ignores style="".
        "var d = document.createElement('div'); d.id = 'planted'; \
         var p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#aaa'; \
         var i = document.createElement('input'); i.id = 'nolabel'; \
         var w = document.createElement('div'); w.textContent = 'wide'; w.style.width = '600px'; \
         d.append(p, i, w); document.body.appendChild(d); return true;",
        vec![],
    )
    .await;
    assert_eq!(planted, json!(true));
    let found = audit(&c, "planted").await.join("\n");
    for expected in [
        "contrast",
        "without a label: input#nolabel",
        "scrolls sideways",
    ] {
        assert!(
            found.contains(expected),
            "the audit missed {expected}: {found}"
        );
    }
    js(
        &c,
        "document.getElementById('planted').remove(); return true;",
        vec![],
    )
    .await;
    sign_in(&c, &app.base, "ada@example.com", "/today").await;
    let pages = [
        ("/today".to_string(), ".queue-item".to_string()),
        ("/leads".into(), "#leads-table tbody tr".into()),
        (format!("/leads/{lead_id}"), "#contact-h".into()),
        ("/plans".into(), "#view h2".into()),
        (
            "/plans/relentless-21".into(),
            "#plan-preview tbody tr".into(),
        ),
        ("/templates/r21-d0-text".into(), "#tpl-body".into()),
        ("/reports".into(), "#chart-attempts .floor".into()),
        ("/team".into(), "pre.snippet".into()),
    ];
    // Nine pages in a row also prove that a page's notification stream is closed when the
    // agent moves on: a browser opens at most six connections to one server, and streams
    // left open by the pages behind it once left the app waiting at "Loading…".
    for (path, ready) in &pages {
        c.goto(&format!("{}{path}", app.base)).await.unwrap();
        wait_for(&c, ready).await;
        problems.extend(audit(&c, path).await);
        if path == "/today" || path.starts_with("/plans/") {
            screenshot(
                &c,
                &format!("phone-{}", path.trim_start_matches('/').replace('/', "-")),
            )
            .await;
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // The keyboard alone: Tab from the top of Today reaches the skip link first, every stop
    // shows a focus ring, and Enter on an outcome button logs the call.
    c.goto(&format!("{}/today", app.base)).await.unwrap();
    let card = format!("[data-task='{}']", call["id"]);
    wait_for(&c, &card).await;
    press(&c, TAB).await;
    let first = focused(&c).await;
    assert_eq!(first["cls"], "skip", "the first Tab stop: {first}");
    let mut stops = vec![first];
    loop {
        press(&c, TAB).await;
        let f = focused(&c).await;
        assert_eq!(f["ring"], true, "no visible focus on {f}");
        stops.push(f.clone());
        if f["outcome"] == "voicemail" {
            break;
        }
        assert!(
            stops.len() < 60,
            "60 Tab presses never reached the call's outcome buttons: {stops:#?}"
        );
    }
    press(&c, ENTER).await;
    app.wait_task(lead_id, "done", |t| {
        t["id"] == call["id"] && t["outcome"] == "voicemail"
    })
    .await;

    // The plan editor's step rows: add a step, move it up, give it an impossible time (the
    // error sits next to that step's field and nothing is saved), then fix and save it.
    let steps_before = app.get(&app.admin, "/api/v1/plans/cold-8").await.1["steps"]
        .as_array()
        .unwrap()
        .len();
    c.goto(&format!("{}/plans/cold-8", app.base)).await.unwrap();
    wait_for(&c, "#plan-preview tbody tr").await;
    click(&c, "#add-step").await;
    let last = steps_before; // the new step's index
    wait_for(&c, &format!("#step-{last}-when")).await;
    // Focus moves to the new step's first field.
    assert_eq!(focused(&c).await["id"], format!("step-{last}-when"));
    click(&c, &format!("[aria-label='Move step {} up']", last + 1)).await;
    let moved = last - 1;
    wait_for(&c, &format!("#step-{moved}-at")).await;
    // An hour that does not exist on a clock: typed into the field's API name directly.
    js(
        &c,
        "var e = document.getElementById(arguments[0]); e.type = 'text'; e.value = '25:00'; \
         e.dispatchEvent(new Event('input')); return true;",
        vec![json!(format!("step-{moved}-at"))],
    )
    .await;
    click(&c, "#plan-form button[type=submit]").await;
    let err = eventually("the error next to the step's time", 15, || async {
        let e = c
            .find(Locator::Css(&format!("#step-{moved}-at-error")))
            .await
            .ok()?;
        e.text().await.ok()
    })
    .await;
    assert!(err.contains("25:00"), "{err}");
    let unchanged = app.get(&app.admin, "/api/v1/plans/cold-8").await.1;
    assert_eq!(unchanged["steps"].as_array().unwrap().len(), steps_before);
    type_into(&c, &format!("#step-{moved}-at"), "11:30").await;
    click(&c, "#plan-form button[type=submit]").await;
    let saved = eventually("the plan saved with the new step", 15, || async {
        let p = app.get(&app.admin, "/api/v1/plans/cold-8").await.1;
        (p["steps"].as_array()?.len() == steps_before + 1).then_some(p)
    })
    .await;
    let step = &saved["steps"][moved];
    assert_eq!(step["at"], "11:30", "{saved}");
    assert_eq!(step["channel"], "text", "{saved}");
    assert!(saved["source"].as_str().unwrap().contains("\"11:30\""));
}

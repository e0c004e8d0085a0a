//! `GET /signin/{intake_token}`: the open-house sign-in kiosk for a tablet. Big fields,
//! consent checkboxes whose exact wording is recorded with the lead, and offline tolerance:
//! a sign-in that cannot be posted is kept in the browser's storage and retried until it is.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::response::Html;

pub const TEXT_CONSENT: &str = "Yes, text me about this home and others like it. Msg & data rates may apply. Msg frequency varies. Reply STOP to opt out.";
pub const EMAIL_CONSENT: &str = "Yes, email me listings and market updates. Unsubscribe anytime.";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    let intake = {
        let mut tx = state.engine.store.read().await?;
        tx.intake_by_token(&token)
            .await?
            .filter(|i| i.active)
            .ok_or_else(ApiError::not_found)?
    };
    let team = state.engine.team_ctx().await?.team.name;
    Ok(Html(format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Welcome — {team}</title>
<style>
*{{box-sizing:border-box}} body{{font-family:system-ui,sans-serif;margin:0;background:#f4f6fb;color:#14171f}}
main{{max-width:40rem;margin:0 auto;padding:2rem 1.25rem}} h1{{font-size:2rem;margin:.2rem 0 1.5rem}}
label{{display:block;font-size:1.2rem;margin:1rem 0 .35rem;font-weight:600}}
input[type=text],input[type=email],input[type=tel]{{width:100%;font-size:1.4rem;padding:.9rem 1rem;border:2px solid #b8c0d4;border-radius:.6rem;background:#fff}}
input:focus{{outline:3px solid #1f4fd1;border-color:#1f4fd1}}
.check{{display:flex;gap:.8rem;align-items:flex-start;font-weight:400;font-size:1.05rem;margin:1.2rem 0}}
.check input{{width:1.8rem;height:1.8rem;flex:none}}
button{{width:100%;font-size:1.5rem;padding:1.1rem;margin-top:1.5rem;border:0;border-radius:.7rem;background:#1f4fd1;color:#fff;font-weight:700}}
#status{{margin-top:1.2rem;font-size:1.15rem;min-height:1.5em}} .hp{{position:absolute;left:-10000px}}
</style></head>
<body><main>
<p>{team} · {source}</p>
<h1>Welcome! Please sign in</h1>
<form id="f" autocomplete="on">
<label for="first_name">First name</label><input id="first_name" name="first_name" type="text" required autocomplete="given-name">
<label for="last_name">Last name</label><input id="last_name" name="last_name" type="text" autocomplete="family-name">
<label for="phone">Mobile phone</label><input id="phone" name="phone" type="tel" autocomplete="tel" inputmode="tel">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" inputmode="email">
<label class="check"><input type="checkbox" id="consent_text" name="consent_text"><span id="consent_text_wording">{text_consent}</span></label>
<label class="check"><input type="checkbox" id="consent_email" name="consent_email"><span id="consent_email_wording">{email_consent}</span></label>
<div class="hp" aria-hidden="true"><input name="hp_website" tabindex="-1" autocomplete="off"></div>
<button type="submit">Sign in</button>
<div id="status" role="status" aria-live="polite"></div>
</form></main>
<script>
(function(){{
  var KEY='relentless-signins-{token}', url='/webhooks/leads/{token}';
  var form=document.getElementById('f'), status=document.getElementById('status');
  function queue(){{ try {{ return JSON.parse(localStorage.getItem(KEY)||'[]'); }} catch(e) {{ return []; }} }}
  function save(q){{ localStorage.setItem(KEY, JSON.stringify(q)); }}
  var sending=false, waiting=false;
  function show(){{ var n=queue().length; if(n) {{ waiting=true; status.textContent=n+' sign-in'+(n>1?'s':'')+' waiting to send; will retry automatically.'; }} }}
  // One sign-in in flight at a time (the 'online' event, the timer and a new sign-in can all
  // ask at once): each is posted once and leaves the queue only when the server has it.
  function flush(){{
    if(sending) return;
    var q=queue();
    if(!q.length){{ if(waiting){{ waiting=false; status.textContent='All sign-ins sent.'; }} return; }}
    var item=q[0], sent=JSON.stringify(item);
    sending=true;
    // Posted as a form: what a person typed is kept even when a field is invalid. The
    // server answers a form with a redirect to the intake's thank-you page, which may be on
    // another site: that redirect is the answer, not something to follow.
    fetch(url,{{method:'POST',body:new URLSearchParams(item),redirect:'manual'}})
      .then(function(r){{
        if(!(r.ok || r.type==='opaqueredirect' || (r.status>=400 && r.status<500 && r.status!==429))) throw new Error('status '+r.status);
        var q=queue(); if(q.length && JSON.stringify(q[0])===sent) save(q.slice(1));
        sending=false; flush();
      }}).catch(function(){{ sending=false; show(); }});
  }}
  form.addEventListener('submit', function(ev){{
    ev.preventDefault();
    var d={{}}; new FormData(form).forEach(function(v,k){{ d[k]=v; }});
    if(!d.phone && !d.email){{ status.textContent='Please give a phone number or an email.'; return; }}
    d.consent_text = document.getElementById('consent_text').checked ? 'yes' : '';
    d.consent_email = document.getElementById('consent_email').checked ? 'yes' : '';
    d.consent_text_wording = document.getElementById('consent_text_wording').textContent;
    d.consent_email_wording = document.getElementById('consent_email_wording').textContent;
    var q=queue(); q.push(d); save(q);
    form.reset();
    waiting=false; status.textContent='Thank you, '+(d.first_name||'')+'! Enjoy the home.';
    flush();
  }});
  window.addEventListener('online', flush);
  setInterval(flush, 10000);
  flush();
}})();
</script>
</body></html>"##,
        team = esc(&team),
        source = esc(&intake.source),
        text_consent = esc(TEXT_CONSENT),
        email_consent = esc(EMAIL_CONSENT),
        token = token,
    )))
}

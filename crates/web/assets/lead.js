// The lead page: contact card with consent flags, quick actions (call with outcome, text,
// email with a template picker and live preview, meeting with a promised answer time,
// personal video), the plan's touches past and future in the lead's time and the agent's,
// and the timeline.
(function () {
  'use strict';
  var h = RL.h, id = RL.arg, lead, templates = [];

  function field(labelText, input, help) {
    return h('div', null, h('label', { for: input.id, text: labelText }), input, help ? h('p', { class: 'muted', text: help }) : null);
  }
  function select(id, name, options, value) {
    return h('select', { id: id, name: name }, options.map(function (o) {
      var v = Array.isArray(o) ? o[0] : o, t = Array.isArray(o) ? o[1] : RL.label(o);
      return h('option', { value: v, selected: v === value, text: t });
    }));
  }
  function flag(ok, yes, no) { return h('span', { class: 'badge ' + (ok ? 'ok' : 'bad'), text: ok ? yes : no }); }

  function card(consents) {
    var text = consents.filter(function (c) { return c.channel === 'text'; })[0];
    var email = consents.filter(function (c) { return c.channel === 'email'; })[0];
    var levelSel = select('level', 'level', ['hot', 'warm', 'cold', 'nurture'], lead.level);
    var stageSel = select('stage', 'stage', ['new', 'attempting', 'contacted', 'appointment', 'client', 'closed', 'lost'], lead.stage);
    var save = h('form', { class: 'row', on: { submit: function (ev) {
      ev.preventDefault();
      RL.api('PATCH', '/api/v1/leads/' + id, { level: levelSel.value, stage: stageSel.value })
        .then(load).catch(function (e) { RL.showErrors(save, e); });
    } } }, h('div', null, h('label', { for: 'level', text: 'Level' }), levelSel),
      h('div', null, h('label', { for: 'stage', text: 'Stage' }), stageSel),
      h('button', { type: 'submit', text: 'Save' }));
    return h('section', { class: 'card', 'aria-labelledby': 'contact-h' },
      h('h2', { id: 'contact-h', text: 'Contact' }),
      h('p', null, RL.levelBadge(lead.level), ' ', h('span', { class: 'badge', text: RL.label(lead.stage) })),
      h('p', null, lead.phone ? h('a', { href: 'tel:' + lead.phone, text: lead.phone }) : 'No phone', ' ',
        lead.phone ? flag(!lead.sms_opt_out && !lead.phone_bad, 'texts ok', lead.sms_opt_out ? 'opted out of texts' : 'bad number') : null),
      h('p', null, lead.email ? h('a', { href: 'mailto:' + lead.email, text: lead.email }) : 'No email', ' ',
        lead.email ? flag(!lead.email_opt_out && !lead.email_bad, 'email ok', lead.email_opt_out ? 'unsubscribed' : 'bad address') : null),
      lead.do_not_call ? h('p', null, flag(false, '', 'do not call')) : null,
      h('p', null, 'Preferred channel: ', h('strong', { text: lead.preferred_channel || 'text' })),
      h('p', null, 'Consent to texts: ', h('strong', { text: text ? 'yes, ' + RL.fmt(text.at) : 'not recorded' }),
        h('br'), 'Consent to emails: ', h('strong', { text: email ? 'yes, ' + RL.fmt(email.at) : 'not recorded' })),
      h('p', { class: 'muted' }, 'Local time zone: ' + lead.timezone + ' · source ' + lead.source + ' · came in ' + RL.ago(lead.created_at)),
      h('p', null, h('strong', { text: lead.attempts + ' attempts' }), lead.attempts < 8 ? ' (below 8)' : ''),
      RL.admin ? assign() : (lead.assigned_to ? h('p', { class: 'muted', text: 'Agent: ' + lead.assigned_to }) : null),
      lead.notes ? h('details', null, h('summary', { text: 'Notes' }), h('div', { class: 'script', text: lead.notes })) : null,
      save);
  }

  // Admins hand a lead to another agent; its open tasks go with it.
  function assign() {
    var s = h('select', { id: 'assigned_to', name: 'assigned_to', 'data-field': 'assigned_to' }, h('option', { value: lead.assigned_to || '', text: lead.assigned_to || 'Nobody' }));
    var form = h('form', { class: 'row', on: { submit: function (ev) {
      ev.preventDefault();
      RL.api('PATCH', '/api/v1/leads/' + id, { assigned_to: s.value }).then(load).catch(function (e) { RL.showErrors(form, e); });
    } } }, h('div', null, h('label', { for: 'assigned_to', text: 'Agent' }), s), h('button', { type: 'submit', text: 'Assign' }));
    RL.api('GET', '/api/v1/users').then(function (u) {
      u.items.forEach(function (x) { if (x.active !== false && x.email !== lead.assigned_to) s.appendChild(h('option', { value: x.email, text: x.name + ' (' + x.email + ')' })); });
    });
    return form;
  }

  function callAction() {
    var status = h('p', { role: 'status', class: 'muted' });
    var buttons = [['connected', 'Connected'], ['voicemail', 'Left voicemail'], ['no_answer', 'No answer'], ['bad_number', 'Bad number']].map(function (o) {
      return h('button', { type: 'button', 'data-outcome': o[0], text: o[1], on: { click: function () {
        status.textContent = 'Saving…';
        RL.api('POST', '/api/v1/leads/' + id + '/activities', { kind: 'call', outcome: o[0] })
          .then(function () { status.textContent = 'Call logged: ' + RL.label(o[0]) + '.'; load(); })
          .catch(function (e) { status.textContent = 'Not saved: ' + e.message; });
      } } });
    });
    return h('section', { class: 'card', 'aria-labelledby': 'call-h' }, h('h2', { id: 'call-h', text: 'Call' }),
      lead.phone && !lead.do_not_call ? h('a', { class: 'button primary', href: 'tel:' + lead.phone, text: 'Call ' + lead.phone }) : h('p', { class: 'muted', text: 'No callable number.' }),
      h('p', { class: 'muted', text: 'Then log how it went:' }),
      h('div', { class: 'outcomes' }, buttons), status);
  }

  function messageAction() {
    var channel = select('msg-channel', 'channel', [['text', 'Text'], ['email', 'Email']], lead.sms_opt_out || !lead.phone ? 'email' : 'text');
    var tpl = h('select', { id: 'msg-template', name: 'template' });
    var subject = h('input', { id: 'msg-subject', name: 'subject', 'data-field': 'subject' });
    var body = h('textarea', { id: 'msg-body', name: 'body', 'data-field': 'body' });
    var preview = h('div', { class: 'preview', 'aria-live': 'polite', id: 'msg-preview' });
    var status = h('p', { role: 'status', class: 'muted' });
    var subjectRow = field('Subject', subject);
    function fillTemplates() {
      tpl.textContent = '';
      tpl.appendChild(h('option', { value: '', text: '— write your own —' }));
      templates.filter(function (t) { return t.channel === channel.value; }).forEach(function (t) {
        tpl.appendChild(h('option', { value: t.slug, text: t.name }));
      });
      subjectRow.hidden = channel.value !== 'email';
    }
    var timer;
    function refresh() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (!body.value.trim()) { preview.textContent = 'The preview shows here.'; return; }
        RL.api('POST', '/api/v1/templates/preview', { lead_id: Number(id), body: body.value, subject: channel.value === 'email' ? subject.value : null })
          .then(function (p) {
            RL.showErrors(form, null);
            preview.textContent = '';
            if (p.subject) preview.appendChild(h('p', null, h('strong', { text: p.subject })));
            preview.appendChild(h('div', { class: 'script', text: p.body }));
          }).catch(function (e) { RL.showErrors(form, e); preview.textContent = 'Fix the message to see a preview.'; });
      }, 250);
    }
    channel.addEventListener('change', function () { fillTemplates(); refresh(); });
    tpl.addEventListener('change', function () {
      var t = templates.filter(function (x) { return x.slug === tpl.value; })[0];
      if (t) { body.value = t.body; subject.value = t.subject || ''; }
      refresh();
    });
    body.addEventListener('input', refresh);
    subject.addEventListener('input', refresh);
    var form = h('form', { class: 'msg', on: { submit: function (ev) {
      ev.preventDefault();
      status.textContent = 'Sending…';
      RL.api('POST', '/api/v1/leads/' + id + '/messages', { channel: channel.value, subject: subject.value, body: body.value })
        .then(function (m) { status.textContent = (m.channel === 'email' ? 'Email' : 'Text') + ' sent to ' + m.to + '.'; body.value = ''; subject.value = ''; refresh(); load(); })
        .catch(function (e) { status.textContent = ''; RL.showErrors(form, e); });
    } } },
      field('Send as', channel), field('Template', tpl), subjectRow,
      field('Message', body, 'Merge fields like {{ lead.first_name }} are filled in for this lead.'),
      h('p', { class: 'muted', text: 'Preview' }), preview,
      h('button', { type: 'submit', class: 'primary', text: 'Send now' }), status);
    fillTemplates();
    refresh();
    return h('section', { class: 'card', 'aria-labelledby': 'msg-h' }, h('h2', { id: 'msg-h', text: 'Text or email' }), form);
  }

  function meetingAction() {
    var at = h('input', { id: 'mtg-at', type: 'datetime-local', name: 'at', 'data-field': 'at' });
    var promised = h('input', { id: 'mtg-promised', type: 'datetime-local', name: 'promised_reply_by', 'data-field': 'promised_reply_by' });
    var note = h('input', { id: 'mtg-note', name: 'note' });
    var status = h('p', { role: 'status', class: 'muted' });
    var form = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      var data = { kind: 'meeting', note: note.value || null };
      if (at.value) data.at = new Date(at.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
      if (promised.value) data.promised_reply_by = new Date(promised.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
      RL.api('POST', '/api/v1/leads/' + id + '/activities', data)
        .then(function () { status.textContent = 'Meeting logged; the follow-up plan has started.'; form.reset(); load(); })
        .catch(function (e) { RL.showErrors(form, e); });
    } } }, field('When (blank: now)', at), field('They promised an answer by (optional)', promised), field('Note', note),
      h('button', { type: 'submit', text: 'Log meeting' }), status);
    return h('section', { class: 'card', 'aria-labelledby': 'mtg-h' }, h('h2', { id: 'mtg-h', text: 'Meeting' }), form);
  }

  function plans(enrollments, allPlans) {
    var rows = enrollments.map(function (e) {
      var act = [];
      if (e.state === 'active') act.push(h('button', { type: 'button', text: 'Pause', on: { click: function () { setState(e.plan, 'paused'); } } }));
      if (e.state === 'paused') act.push(h('button', { type: 'button', text: 'Resume', on: { click: function () { setState(e.plan, 'active'); } } }));
      if (e.state === 'active' || e.state === 'paused') act.push(h('button', { type: 'button', text: 'Stop', on: { click: function () {
        if (confirm('Stop ' + e.plan + ' for this lead? Its scheduled touches are cancelled.'))
          RL.api('DELETE', '/api/v1/leads/' + id + '/enrollments/' + encodeURIComponent(e.plan)).then(load).catch(alertErr);
      } } }));
      return h('li', null, h('strong', { text: e.plan }), ' — ' + e.state + (e.reason ? ' (' + e.reason + ')' : ''), ' ', h('span', { class: 'row' }, act));
    });
    var pick = select('enroll-plan', 'plan', allPlans.map(function (p) { return [p.slug, p.name]; }));
    var form = h('form', { class: 'row', on: { submit: function (ev) {
      ev.preventDefault();
      RL.api('POST', '/api/v1/leads/' + id + '/enrollments', { plan: pick.value }).then(load).catch(function (e) { RL.showErrors(form, e); });
    } } }, h('label', { for: 'enroll-plan', class: 'sr-only', text: 'Plan to start' }), pick, h('button', { type: 'submit', text: 'Start plan' }));
    return h('section', { class: 'card', 'aria-labelledby': 'plans-h' }, h('h2', { id: 'plans-h', text: 'Plans' }),
      rows.length ? h('ul', null, rows) : h('p', { class: 'muted', text: 'In no plan.' }), form);
  }
  function setState(plan, state) {
    RL.api('PATCH', '/api/v1/leads/' + id + '/enrollments/' + encodeURIComponent(plan), { state: state }).then(load).catch(alertErr);
  }
  function alertErr(e) { alert(e.message); }

  function touches(items) {
    var rows = items.map(function (t) {
      return h('tr', null,
        h('td', { text: t.plan + ' #' + t.step }),
        h('td', { text: RL.label(t.channel) }),
        h('td', null, RL.fmt(t.due_at, lead.timezone, true), h('br'), h('span', { class: 'muted', text: 'you: ' + RL.fmt(t.due_at, RL.agentZone, true) })),
        h('td', null, h('span', { class: 'status ' + t.status, text: t.status }), t.reason ? h('div', { class: 'muted', text: t.reason }) : null));
    });
    return h('section', { class: 'card', 'aria-labelledby': 'touches-h' }, h('h2', { id: 'touches-h', text: 'Touches' }),
      h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, h('th', { text: 'Step' }), h('th', { text: 'Channel' }), h('th', { text: "When (lead's time / yours)" }), h('th', { text: 'Status' }))),
        h('tbody', null, rows))));
  }

  function timeline(items) {
    return h('section', { class: 'card', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h', text: 'Timeline' }),
      h('ol', { class: 'timeline' }, items.map(function (a) {
        return h('li', null, h('strong', { text: a.detail || RL.label(a.kind) }), h('div', { class: 'muted', text: RL.fmt(a.at) + ' · ' + RL.label(a.kind) }));
      })));
  }

  function load() {
    return Promise.all([
      RL.api('GET', '/api/v1/leads/' + id),
      RL.api('GET', '/api/v1/leads/' + id + '/timeline?limit=100'),
      RL.api('GET', '/api/v1/leads/' + id + '/touches'),
      RL.api('GET', '/api/v1/leads/' + id + '/consents').catch(function () { return { items: [] }; }),
      templates.length ? Promise.resolve({ items: templates }) : RL.api('GET', '/api/v1/templates'),
      RL.api('GET', '/api/v1/plans')
    ]).then(function (r) {
      lead = r[0]; templates = r[4].items;
      var name = ((lead.first_name || '') + ' ' + (lead.last_name || '')).trim() || '(no name)';
      RL.setTitle(name);
      var consents = r[3].items || [];
      var video = window.RLVideo ? window.RLVideo(lead, load) : null;
      RL.render(h('div', { class: 'grid2' },
        h('div', null, card(consents), plans(lead.enrollments || [], r[5].items)),
        h('div', null, callAction(), messageAction(), video, meetingAction(), touches(r[2].items || []), timeline(r[1].items || []))));
      if (location.hash === '#video') { var v = document.getElementById('video-h'); if (v) v.scrollIntoView(); }
    }).catch(RL.fail);
  }
  document.addEventListener('rl:event', function (e) { if (String(e.detail.data.lead_id) === String(id)) load(); });
  load();
})();

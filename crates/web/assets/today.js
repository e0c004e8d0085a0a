// Today: the agent's queue. Leads engaging right now are pinned first ("opened your video
// 12 s ago — call now"), then overdue tasks, hot leads' calls, other calls, and the rest.
// An outcome button logs the call and advances the plan without a page reload.
(function () {
  'use strict';
  var h = RL.h;
  var HEAD = {
    engaging: 'Engaging right now', overdue: 'Overdue', hot_calls: "Hot leads' calls",
    calls: 'Calls due', other: 'Texts, emails and other tasks'
  };
  var KIND = { call: 'Call', video: 'Record a video', reply: 'Reply', promised_answer: 'Promised answer due', task: 'Task' };
  var OUTCOMES = {
    call: [['connected', 'Connected'], ['voicemail', 'Left voicemail'], ['no_answer', 'No answer'], ['bad_number', 'Bad number']],
    other: [['done', 'Done'], ['connected', 'They answered']]
  };

  function since(lead) { return 'came in ' + RL.ago(lead.created_at); }

  function item(t) {
    var lead = t.lead;
    var card = h('article', { class: 'card queue-item ' + t.group, 'data-task': t.id, 'aria-labelledby': 'task-' + t.id });
    var status = h('p', { class: 'muted', role: 'status' });
    var outcomes = (t.kind === 'call' ? OUTCOMES.call : OUTCOMES.other).map(function (o) {
      return h('button', { type: 'button', 'data-outcome': o[0], text: o[1], on: { click: function () { log(t, o[0], card, status); } } });
    });
    var due = t.overdue_seconds > 0 ? 'due ' + RL.agoSeconds(t.overdue_seconds) : 'due ' + RL.fmt(t.due_at);
    card.appendChild(h('div', { class: 'spread' },
      h('h3', { id: 'task-' + t.id, style: null },
        h('a', { href: '/leads/' + lead.id, text: lead.name || '(no name)' }), ' ', RL.levelBadge(lead.level)),
      h('span', { class: 'muted', text: KIND[t.kind] + ' · ' + due })));
    card.appendChild(h('p', { class: 'muted' },
      t.attempt ? h('strong', { class: 'attempt', text: 'Attempt ' + t.attempt.n + ' of ' + t.attempt.of }) : null,
      t.attempt ? ' · ' + RL.label(t.attempt.plan) + ' · ' : '',
      since(lead), ' · ', lead.source));
    if (t.kind === 'call' && lead.phone && !lead.do_not_call) {
      card.appendChild(h('p', null, h('a', { class: 'button primary', href: 'tel:' + lead.phone, text: 'Call ' + lead.phone })));
    } else if (t.kind === 'call') {
      card.appendChild(h('p', { class: 'error', text: lead.do_not_call ? 'Do not call: this lead asked not to be called.' : 'No phone number on file.' }));
    }
    if (t.kind === 'video') {
      card.appendChild(h('p', null, h('a', { class: 'button primary', href: '/leads/' + lead.id + '#video', text: 'Record the video' })));
    }
    if (t.script) card.appendChild(h('details', { open: t.kind === 'call' }, h('summary', { text: t.kind === 'call' ? 'Call script' : 'What to do' }), h('div', { class: 'script', text: t.script })));
    if (t.voicemail) card.appendChild(h('details', null, h('summary', { text: 'Voicemail script' }), h('div', { class: 'script', text: t.voicemail })));
    card.appendChild(h('div', { class: 'outcomes', role: 'group', 'aria-label': 'Log the outcome' }, outcomes));
    card.appendChild(status);
    return card;
  }

  function log(t, outcome, card, status) {
    card.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
    status.textContent = 'Saving…';
    RL.api('POST', '/api/v1/tasks/' + t.id + '/complete', { outcome: outcome })
      .then(function () {
        status.textContent = 'Logged: ' + RL.label(outcome) + '.';
        card.classList.add('done');
        // The plan moved on: the queue is fetched again, so the next touch shows up.
        setTimeout(load, 600);
      })
      .catch(function (e) {
        status.textContent = 'Not saved: ' + e.message;
        card.querySelectorAll('button').forEach(function (b) { b.disabled = false; });
      });
  }

  function engagingCard(e) {
    var lead = e.lead;
    return h('article', { class: 'card queue-item engaging', 'data-lead': lead.id },
      h('p', { class: 'pin' }, '🔥 ', h('a', { href: '/leads/' + lead.id, text: lead.name || '(no name)' }),
        ' ' + (e.detail || 'is engaging') + ' ' + RL.agoSeconds(e.seconds_ago) + ' — call now'),
      lead.phone && !lead.do_not_call ? h('a', { class: 'button primary', href: 'tel:' + lead.phone, text: 'Call ' + lead.phone }) : null);
  }

  function load() {
    return RL.api('GET', '/api/v1/today').then(function (d) {
      var out = [];
      var pinnedLeads = {};
      var groups = {};
      d.items.forEach(function (t) { (groups[t.group] = groups[t.group] || []).push(t); });
      if (d.engaging.length) {
        out.push(h('h2', { text: HEAD.engaging }));
        d.engaging.forEach(function (e) {
          pinnedLeads[e.lead.id] = true;
          out.push(engagingCard(e));
        });
        (groups.engaging || []).forEach(function (t) { out.push(item(t)); });
      }
      ['overdue', 'hot_calls', 'calls', 'other'].forEach(function (g) {
        if (!groups[g]) return;
        out.push(h('h2', { text: HEAD[g] + ' (' + groups[g].length + ')' }));
        groups[g].forEach(function (t) { out.push(item(t)); });
      });
      if (!out.length) out.push(h('div', { class: 'card' }, h('p', { text: 'Nothing due right now. New leads and engagement will show up here the moment they happen.' })));
      RL.render(out);
    }).catch(RL.fail);
  }

  // Engagement, replies and tasks falling due change the queue: refresh it when they arrive.
  document.addEventListener('rl:event', function () { load(); });
  setInterval(load, 60000);
  load();
})();

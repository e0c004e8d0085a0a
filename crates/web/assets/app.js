// Relentless web app: the shared part of every page. A tiny DOM builder (text is always
// set as text, never parsed as HTML), the API client (session cookie + CSRF header,
// problem+json errors), time formatting in the lead's and the agent's zones, and live
// alerts over Server-Sent Events that resume from the last event seen, across reconnects
// and page loads.
(function () {
  'use strict';
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  var body = document.body;

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'on') Object.keys(v).forEach(function (ev) { el.addEventListener(ev, v[ev]); });
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    });
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  // An API error: the problem's detail, and the message per field for forms.
  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
    this.message = (problem && (problem.detail || problem.title)) || ('HTTP ' + status);
    this.fields = {};
    var self = this;
    ((problem && problem.errors) || []).forEach(function (e) { self.fields[e.field] = e.message; });
  }
  ApiError.prototype = Object.create(Error.prototype);

  function api(method, path, data, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    var payload;
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    if (opts.raw) { payload = data; if (opts.type) headers['Content-Type'] = opts.type; }
    else if (data !== undefined) { payload = JSON.stringify(data); headers['Content-Type'] = 'application/json'; }
    return fetch(path, { method: method, headers: headers, body: payload, credentials: 'same-origin' })
      .then(function (r) {
        if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); throw new ApiError(401, { detail: 'signed out' }); }
        var ct = r.headers.get('content-type') || '';
        var parsed = ct.indexOf('json') >= 0 ? r.json() : r.text();
        return parsed.then(function (b) {
          if (!r.ok) throw new ApiError(r.status, typeof b === 'object' ? b : { detail: b });
          return b;
        });
      });
  }

  var agentZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  function fmt(iso, zone, withZone) {
    if (!iso) return '—';
    try {
      return new Intl.DateTimeFormat(undefined, {
        weekday: 'short', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit',
        timeZone: zone || agentZone, timeZoneName: withZone ? 'short' : undefined
      }).format(new Date(iso));
    } catch (e) { return iso; }
  }
  function ago(iso) {
    var s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    return agoSeconds(s);
  }
  function agoSeconds(s) {
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  function duration(s) {
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return (s / 3600).toFixed(1).replace('.0', '') + ' h';
    return (s / 86400).toFixed(1).replace('.0', '') + ' d';
  }
  function label(s) { return String(s || '').replace(/_/g, ' '); }
  function levelBadge(level) { return h('span', { class: 'badge ' + level, text: level }); }

  // Shows field errors next to their inputs (`data-field` names the API field).
  function showErrors(form, err) {
    form.querySelectorAll('.field-error').forEach(function (e) { e.remove(); });
    form.querySelectorAll('[aria-invalid]').forEach(function (e) { e.removeAttribute('aria-invalid'); e.removeAttribute('aria-describedby'); });
    var general = form.querySelector('.form-error');
    if (general) general.remove();
    if (!err) return;
    var placed = false;
    Object.keys(err.fields || {}).forEach(function (f) {
      var input = form.querySelector('[data-field="' + f + '"]') || form.querySelector('[name="' + f + '"]');
      if (!input) return;
      placed = true;
      var id = (input.id || ('f-' + f)) + '-error';
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', id);
      input.insertAdjacentElement('afterend', h('p', { class: 'field-error', id: id, role: 'alert', text: err.fields[f] }));
    });
    if (!placed) form.insertBefore(h('p', { class: 'error form-error', role: 'alert', text: err.message }), form.firstChild);
  }

  // ---- live alerts ----------------------------------------------------------------
  var KEY = 'relentless-last-event-' + body.dataset.userId;
  var toasts = document.getElementById('toasts');
  var audio;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; g.gain.value = 0.08;
      o.connect(g); g.connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.18);
    } catch (e) { /* no sound: the toast is still shown */ }
  }
  var WORDS = { engagement: 'is engaging', reply: 'replied', task_due: 'has a task due', escalation: 'was escalated' };
  function toast(ev, d) {
    var text = (d.lead_name || 'A lead') + ' ' + (d.detail || WORDS[ev] || ev);
    var link = d.lead_id ? h('a', { href: '/leads/' + d.lead_id, text: ev === 'engagement' ? 'Call now' : 'Open' }) : null;
    var t = h('div', { class: 'toast ' + ev, role: ev === 'engagement' ? 'alert' : 'status', 'data-event': ev },
      h('div', null, h('strong', { text: text }), ' ', link),
      h('button', { type: 'button', 'aria-label': 'Dismiss', text: '×', on: { click: function () { t.remove(); } } }));
    toasts.appendChild(t);
    setTimeout(function () { t.remove(); }, 20000);
    beep();
    if (window.Notification && Notification.permission === 'granted' && document.hidden) {
      try { new Notification('Relentless', { body: text, tag: 'rl-' + ev + '-' + d.lead_id }); } catch (e) { }
    }
    document.dispatchEvent(new CustomEvent('rl:event', { detail: { event: ev, data: d } }));
  }
  // A browser allows six connections to one server: a stream left open by every page
  // kept in the back/forward cache would soon leave none for the app's own requests, so the
  // stream closes when the page is hidden and opens again when it comes back.
  var stream;
  window.addEventListener('pagehide', function () { if (stream) { stream.close(); stream = null; } });
  window.addEventListener('pageshow', function (ev) { if (ev.persisted && !stream) listen(); });
  function listen() {
    if (!window.EventSource || !body.dataset.userId) return;
    var last = localStorage.getItem(KEY);
    var url = '/api/v1/notifications/stream' + (last ? '?last_event_id=' + encodeURIComponent(last) : '');
    var es = stream = new EventSource(url);
    ['engagement', 'reply', 'task_due', 'escalation'].forEach(function (name) {
      es.addEventListener(name, function (m) {
        if (m.lastEventId) localStorage.setItem(KEY, m.lastEventId);
        var d = {};
        try { d = JSON.parse(m.data); } catch (e) { }
        // Events missed while no page was open are replayed; only recent ones interrupt.
        if (!d.at || Date.now() - new Date(d.at).getTime() < 10 * 60 * 1000) toast(name, d);
      });
    });
    es.addEventListener('open', function () { body.dataset.live = 'on'; });
    // EventSource retries by itself (with Last-Event-ID); if the browser gave up, start over
    // from the last id this page saw.
    es.addEventListener('error', function () {
      body.dataset.live = 'off';
      if (es.readyState === EventSource.CLOSED && stream === es) { stream = null; setTimeout(function () { if (!stream) listen(); }, 3000); }
    });
  }
  function notificationsButton() {
    if (!window.Notification || Notification.permission !== 'default') return;
    var nav = document.querySelector('.top nav');
    if (!nav) return;
    var b = h('button', { type: 'button', class: 'link', text: 'Turn on desktop alerts', on: { click: function () {
      Notification.requestPermission().then(function () { b.remove(); });
    } } });
    nav.appendChild(b);
  }

  window.RL = {
    h: h, api: api, ApiError: ApiError, fmt: fmt, ago: ago, agoSeconds: agoSeconds, duration: duration,
    label: label, levelBadge: levelBadge, showErrors: showErrors, agentZone: agentZone, toast: toast,
    view: document.getElementById('view'), arg: body.dataset.arg, admin: body.dataset.admin === 'true',
    userEmail: body.dataset.userEmail,
    setTitle: function (t) { var e = document.getElementById('page-title'); if (e) e.textContent = t; document.title = t + ' · Relentless'; },
    render: function (node) { var v = document.getElementById('view'); v.textContent = ''; append(v, node); },
    fail: function (err) { RL.render(h('p', { class: 'error', role: 'alert', text: 'Could not load this page: ' + err.message })); }
  };
  listen();
  notificationsButton();
})();

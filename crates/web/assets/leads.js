// Leads: search (name, phone in any format, email), filters, keyset pages ("Load more"),
// bulk enroll, and CSV import with a preview and every bad row by line number.
(function () {
  'use strict';
  var h = RL.h, cursor = null, params = new URLSearchParams(location.search);
  var tbody = h('tbody'), more = h('button', { type: 'button', text: 'Load more' }), count = h('p', { class: 'muted', role: 'status' });
  var shown = 0;

  function sel(id, label, opts) {
    var s = h('select', { id: id, name: id }, h('option', { value: '', text: 'Any' }), opts.map(function (o) {
      return h('option', { value: Array.isArray(o) ? o[0] : o, text: Array.isArray(o) ? o[1] : RL.label(o) });
    }));
    s.value = params.get(id) || '';
    return h('div', null, h('label', { for: id, text: label }), s);
  }
  var q = h('input', { id: 'q', name: 'q', type: 'search', placeholder: 'Name, phone or email', value: params.get('q') || '' });
  var below = h('input', { id: 'below8', type: 'checkbox', checked: params.get('below_attempts') === '8' });
  var idle = h('input', { id: 'idle3', type: 'checkbox', checked: params.get('no_touch_days') === '3' });
  var filters = h('form', { class: 'filters', role: 'search', on: { submit: function (ev) { ev.preventDefault(); search(); } } },
    h('div', null, h('label', { for: 'q', text: 'Search' }), q),
    sel('level', 'Level', ['hot', 'warm', 'cold', 'nurture']),
    sel('stage', 'Stage', ['new', 'attempting', 'contacted', 'appointment', 'client', 'closed', 'lost']),
    h('div', null, h('label', { for: 'source', text: 'Source' }), h('input', { id: 'source', name: 'source', value: params.get('source') || '' })),
    RL.admin ? sel('assigned_to', 'Agent', [['me', 'Me']]) : null,
    h('label', { class: 'row' }, below, 'Below 8 attempts'),
    h('label', { class: 'row' }, idle, 'No touch in 3 days'),
    h('button', { type: 'submit', class: 'primary', text: 'Search' }));

  function query() {
    var p = new URLSearchParams();
    if (q.value.trim()) p.set('q', q.value.trim());
    ['level', 'stage', 'source', 'assigned_to'].forEach(function (k) {
      var e = document.getElementById(k);
      if (e && e.value) p.set(k, e.value);
    });
    if (below.checked) p.set('below_attempts', '8');
    if (idle.checked) p.set('no_touch_days', '3');
    return p;
  }
  function search() {
    var p = query();
    history.replaceState(null, '', '/leads' + (p.toString() ? '?' + p : ''));
    tbody.textContent = ''; cursor = null; shown = 0;
    page();
  }
  function page() {
    var p = query();
    p.set('limit', '50');
    if (cursor) p.set('cursor', cursor);
    more.disabled = true;
    RL.api('GET', '/api/v1/leads?' + p).then(function (d) {
      d.items.forEach(function (l) {
        var name = ((l.first_name || '') + ' ' + (l.last_name || '')).trim() || l.email || l.phone || '(no name)';
        tbody.appendChild(h('tr', null,
          h('td', null, h('input', { type: 'checkbox', class: 'pick', value: l.id, 'aria-label': 'Select ' + name })),
          h('td', null, h('a', { href: '/leads/' + l.id, text: name }), h('div', { class: 'muted', text: l.phone || l.email || '' })),
          h('td', null, RL.levelBadge(l.level)),
          h('td', { text: RL.label(l.stage) }),
          h('td', { text: l.attempts + (l.attempts < 8 ? ' (below 8)' : '') }),
          h('td', { text: l.next_touch_at ? RL.fmt(l.next_touch_at) : '—' }),
          h('td', { text: l.source }),
          h('td', { text: l.assigned_to || '—' })));
      });
      shown += d.items.length;
      count.textContent = shown + ' lead' + (shown === 1 ? '' : 's') + ' shown' + (d.next_cursor ? '' : ' (all)');
      cursor = d.next_cursor;
      more.hidden = !cursor; more.disabled = false;
    }).catch(function (e) { count.textContent = e.message; });
  }
  more.addEventListener('click', page);

  function bulk(plans) {
    var pick = h('select', { id: 'bulk-plan', 'aria-label': 'Plan' }, plans.map(function (p) { return h('option', { value: p.slug, text: p.name }); }));
    var status = h('span', { role: 'status', class: 'muted' });
    var all = h('input', { type: 'checkbox', 'aria-label': 'Select all shown', on: { change: function () {
      tbody.querySelectorAll('.pick').forEach(function (c) { c.checked = all.checked; });
    } } });
    var go = h('button', { type: 'button', text: 'Enroll selected', on: { click: function () {
      var ids = Array.prototype.map.call(tbody.querySelectorAll('.pick:checked'), function (c) { return c.value; });
      if (!ids.length) { status.textContent = 'Select leads first.'; return; }
      var ok = 0, bad = 0;
      status.textContent = 'Enrolling ' + ids.length + '…';
      // One request per lead: each enrollment stands alone, and one already in the plan is reported, not fatal.
      ids.reduce(function (p, id) {
        return p.then(function () {
          return RL.api('POST', '/api/v1/leads/' + id + '/enrollments', { plan: pick.value }).then(function () { ok++; }, function () { bad++; });
        });
      }, Promise.resolve()).then(function () {
        status.textContent = ok + ' enrolled in ' + pick.value + (bad ? ', ' + bad + ' skipped (already in it or not yours)' : '') + '.';
      });
    } } });
    return { all: all, bar: h('div', { class: 'row card' }, h('strong', { text: 'Bulk:' }), pick, go, status) };
  }

  function importer() {
    var file = h('input', { id: 'csv', type: 'file', accept: '.csv,text/csv', 'data-field': 'file' });
    var plan = h('select', { id: 'import-plan' }, h('option', { value: '', text: 'No plan' }));
    var out = h('div', { 'aria-live': 'polite' });
    var go = h('button', { type: 'button', class: 'primary', text: 'Import', hidden: true });
    var form;
    function send(dry) {
      var f = file.files[0];
      if (!f) return;
      out.textContent = dry ? 'Checking…' : 'Importing…';
      f.arrayBuffer().then(function (buf) {
        return RL.api('POST', '/api/v1/leads/import?dry_run=' + dry + (plan.value ? '&plan=' + encodeURIComponent(plan.value) : ''), buf, { raw: true, type: 'text/csv' });
      }).then(function (r) {
        RL.showErrors(form, null);
        out.textContent = '';
        out.appendChild(h('p', null, h('strong', { text: (dry ? 'Would import ' : 'Imported ') + r.imported + ' rows' }), ' (' + r.merged + ' merged into existing leads), ' + r.rejected + ' rejected.'));
        out.appendChild(h('div', { class: 'table-wrap' }, h('table', { class: 'import-rows' },
          h('thead', null, h('tr', null, h('th', { text: 'Line' }), h('th', { text: 'Lead' }), h('th', { text: 'Result' }))),
          h('tbody', null, r.rows.map(function (row) {
            return h('tr', { class: row.ok ? '' : 'bad-row' }, h('td', { text: row.line }), h('td', { text: row.name }),
              h('td', null, row.ok ? h('span', { class: 'badge ok', text: row.merged ? 'merge' : 'new' }) : h('span', { class: 'field-error', text: row.error })));
          })))));
        go.hidden = !dry || r.imported === 0;
        if (!dry) search();
      }).catch(function (e) { out.textContent = ''; RL.showErrors(form, e); });
    }
    file.addEventListener('change', function () { send(true); });
    go.addEventListener('click', function () { send(false); });
    form = h('form', { on: { submit: function (ev) { ev.preventDefault(); } } },
      h('label', { for: 'csv', text: 'CSV file (a header row with Email or Phone; other columns are kept as notes)' }), file,
      h('label', { for: 'import-plan', text: 'Start this plan for every imported lead' }), plan, out, go);
    return { plan: plan, el: h('details', { class: 'card' }, h('summary', { text: 'Import leads from a CSV file' }), form) };
  }

  RL.api('GET', '/api/v1/plans').then(function (p) {
    var b = bulk(p.items), imp = importer();
    p.items.forEach(function (x) { imp.plan.appendChild(h('option', { value: x.slug, text: x.name })); });
    RL.render([filters, imp.el, b.bar, count,
      h('div', { class: 'table-wrap' }, h('table', { id: 'leads-table' },
        h('thead', null, h('tr', null, h('th', null, b.all), h('th', { text: 'Lead' }), h('th', { text: 'Level' }), h('th', { text: 'Stage' }),
          h('th', { text: 'Attempts' }), h('th', { text: 'Next touch' }), h('th', { text: 'Source' }), h('th', { text: 'Agent' }))),
        tbody)), h('p', null, more)]);
    if (RL.admin) RL.api('GET', '/api/v1/users').then(function (u) {
      var s = document.getElementById('assigned_to');
      u.items.forEach(function (x) { if (x.active !== false) s.appendChild(h('option', { value: x.email, text: x.name })); });
      s.value = params.get('assigned_to') || '';
    });
    page();
  }).catch(RL.fail);
})();

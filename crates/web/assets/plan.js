// A plan's editor: its steps as TOML (day, time, channel, template, one step per block),
// a preview of when each step falls for a sample lead in a chosen time zone (sending window
// applied), and errors shown next to the field that caused them.
(function () {
  'use strict';
  var h = RL.h, slug = RL.arg;
  var ZONES = ['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles', 'America/Phoenix', 'Pacific/Honolulu', 'America/Anchorage', 'America/St_Johns', 'Europe/London', 'Asia/Kolkata', 'Australia/Sydney'];
  RL.api('GET', '/api/v1/plans/' + encodeURIComponent(slug)).then(function (p) {
    RL.setTitle('Plan: ' + p.name);
    var src = h('textarea', { id: 'plan-source', name: 'source', 'data-field': 'source', rows: 24, spellcheck: false, value: p.source });
    src.value = p.source;
    var zone = h('select', { id: 'zone' }, ZONES.map(function (z) { return h('option', { value: z, text: z }); }));
    var start = h('input', { id: 'start', type: 'datetime-local' });
    var previewBox = h('div', { 'aria-live': 'polite' });
    var status = h('p', { role: 'status', class: 'muted' });
    var form;
    function preview() {
      var body = { source: src.value, timezone: zone.value };
      if (start.value) body.start_at = new Date(start.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
      RL.api('POST', '/api/v1/plans/preview', body).then(function (r) {
        RL.showErrors(form, null);
        previewBox.textContent = '';
        if (r.warnings && r.warnings.length) previewBox.appendChild(h('p', { class: 'error', text: r.warnings.join(' ') }));
        previewBox.appendChild(h('div', { class: 'table-wrap' }, h('table', { id: 'plan-preview' },
          h('thead', null, h('tr', null, h('th', { text: 'Step' }), h('th', { text: 'Channel' }), h('th', { text: 'Template' }), h('th', { text: 'Lead\'s local time (' + r.timezone + ')' }))),
          h('tbody', null, r.touches.map(function (t) {
            return h('tr', null, h('td', { text: t.step }), h('td', { text: RL.label(t.channel) }), h('td', { text: t.template }),
              h('td', null, RL.fmt(t.due_at, r.timezone, true), t.moved_by_window ? h('div', { class: 'muted', text: 'moved into the sending window' }) : null));
          })))));
        previewBox.appendChild(h('p', { class: 'muted', text: r.touches.length + ' touches.' }));
      }).catch(function (e) { RL.showErrors(form, e); });
    }
    var timer;
    src.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(preview, 400); });
    zone.addEventListener('change', preview);
    start.addEventListener('change', preview);
    form = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      status.textContent = 'Saving…';
      RL.api('PUT', '/api/v1/plans/' + encodeURIComponent(slug), { source: src.value }).then(function (r) {
        RL.showErrors(form, null);
        status.textContent = 'Saved as version ' + r.version + '.' + (r.warnings && r.warnings.length ? ' Warning: ' + r.warnings.join(' ') : '');
      }).catch(function (e) { status.textContent = ''; RL.showErrors(form, e); });
    } } },
      h('label', { for: 'plan-source', text: 'Steps (TOML: after = "+5m", or day = 3 and at = "10:00"; channel; template)' }), src,
      RL.admin ? h('button', { type: 'submit', class: 'primary', text: 'Save plan' }) : h('p', { class: 'muted', text: 'Only an admin can change plans.' }),
      status);
    RL.render(h('div', { class: 'grid2' },
      h('div', { class: 'card' }, form),
      h('div', { class: 'card' }, h('h2', { text: 'Preview for a sample lead' }),
        h('div', { class: 'row' }, h('div', null, h('label', { for: 'zone', text: 'Lead\'s time zone' }), zone),
          h('div', null, h('label', { for: 'start', text: 'Lead comes in at (blank: now)' }), start)),
        previewBox)));
    preview();
  }).catch(RL.fail);
})();

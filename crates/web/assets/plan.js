// A plan's editor: one row of fields per step (when, channel, template), steps added,
// removed and reordered in place; a preview of when each step falls for a sample lead in a
// chosen time zone (sending window applied); errors shown next to the field that caused
// them (`steps[3].at`). The plan file itself (TOML) stays editable under "Edit as TOML".
(function () {
  'use strict';
  var h = RL.h, slug = RL.arg;
  var ZONES = ['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles', 'America/Phoenix', 'Pacific/Honolulu', 'America/Anchorage', 'America/St_Johns', 'Europe/London', 'Asia/Kolkata', 'Australia/Sydney'];
  var CHANNELS = ['text', 'email', 'call', 'video', 'task', 'preferred'];
  var WHEN = [['after', 'A delay after the start'], ['day', 'A day and local time'], ['promised', 'The promised answer time']];

  Promise.all([RL.api('GET', '/api/v1/plans/' + encodeURIComponent(slug)), RL.api('GET', '/api/v1/templates')]).then(function (r) {
    var p = r[0], templates = r[1].items;
    RL.setTitle('Plan: ' + p.name);
    // Each step keeps the fields the rows do not show (fallback, covered_by, unless_answered).
    var steps = (p.steps || []).map(function (s) { return Object.assign({}, s); });
    var name = h('input', { id: 'plan-name', 'data-field': 'name', value: p.name, required: true });
    name.value = p.name;
    var description = h('textarea', { id: 'plan-description', 'data-field': 'description', rows: 3 });
    description.value = p.description || '';
    var list = h('ol', { id: 'plan-steps', class: 'steps' });
    var zone = h('select', { id: 'zone' }, ZONES.map(function (z) { return h('option', { value: z, text: z }); }));
    var start = h('input', { id: 'start', type: 'datetime-local' });
    var previewBox = h('div', { 'aria-live': 'polite' });
    var status = h('p', { role: 'status', class: 'muted' });
    var src = h('textarea', { id: 'plan-source', 'data-field': 'source', rows: 20, spellcheck: false });
    src.value = p.source;
    var form, tomlForm;

    function kind(s) { return s.at === 'promised' ? 'promised' : (s.day !== undefined && s.day !== null ? 'day' : 'after'); }
    function spec() {
      return {
        slug: slug, name: name.value, description: description.value, levels: p.levels || [],
        on_complete_level: p.on_complete_level || undefined,
        steps: steps.map(function (s) {
          var out = Object.assign({}, s);
          var k = kind(s);
          if (k !== 'day') delete out.day;
          if (k !== 'after') delete out.after;
          if (k === 'after') delete out.at;
          return out;
        })
      };
    }
    function field(i, key, labelText, input, hidden) {
      input.id = 'step-' + i + '-' + key;
      input.setAttribute('data-field', 'steps[' + i + '].' + key);
      return h('div', { class: 'step-field', hidden: hidden }, h('label', { for: input.id, text: labelText }), input);
    }
    function templateSelect(s) {
      var matching = templates.filter(function (t) { return s.channel === 'preferred' || t.channel === s.channel; });
      if (!matching.some(function (t) { return t.slug === s.template; }) && s.template) matching.unshift({ slug: s.template, name: s.template + ' (not found)' });
      var sel = h('select', null, matching.map(function (t) { return h('option', { value: t.slug, text: t.name + ' · ' + t.slug }); }));
      sel.value = s.template;
      return sel;
    }
    function stepRow(s, i) {
      var k = kind(s);
      var when = h('select', null, WHEN.map(function (w) { return h('option', { value: w[0], text: w[1] }); }));
      when.value = k;
      when.addEventListener('change', function () {
        if (when.value === 'after') { s.after = s.after || '+1d'; delete s.day; delete s.at; }
        if (when.value === 'day') { s.day = s.day || 1; s.at = (s.at && s.at !== 'promised') ? s.at : '10:00'; delete s.after; }
        if (when.value === 'promised') { s.at = 'promised'; delete s.day; delete s.after; }
        changed();
      });
      var day = h('input', { type: 'number', min: '0', max: '365', inputmode: 'numeric' });
      day.value = s.day === undefined || s.day === null ? '' : s.day;
      day.addEventListener('input', function () { s.day = day.value === '' ? null : Number(day.value); schedule(); });
      var at = h('input', { type: 'time' });
      at.value = k === 'day' ? (s.at || '') : '';
      at.addEventListener('input', function () { s.at = at.value; schedule(); });
      var after = h('input', { type: 'text', placeholder: '+5m, +2h, +1d', spellcheck: false });
      after.value = s.after || '';
      after.addEventListener('input', function () { s.after = after.value; schedule(); });
      var channel = h('select', null, CHANNELS.map(function (c) { return h('option', { value: c, text: RL.label(c) }); }));
      channel.value = s.channel;
      channel.addEventListener('change', function () {
        s.channel = channel.value;
        var first = templates.filter(function (t) { return t.channel === s.channel; })[0];
        if (first) s.template = first.slug;
        changed();
      });
      var template = templateSelect(s);
      template.addEventListener('change', function () { s.template = template.value; schedule(); });
      var n = i + 1;
      function move(by) { return function () { var j = i + by; steps.splice(j, 0, steps.splice(i, 1)[0]); changed('step-' + j + '-when'); }; }
      var whenField = field(i, 'when', 'When', when);
      when.removeAttribute('data-field');
      return h('li', { class: 'card step', 'data-step': String(i) },
        h('fieldset', null, h('legend', { text: 'Step ' + n }),
          h('div', { class: 'step-grid' },
            whenField,
            field(i, 'after', 'Delay after the start', after, k !== 'after'),
            field(i, 'day', 'Day (0 = the day it starts)', day, k !== 'day'),
            field(i, 'at', 'Lead\'s local time', at, k !== 'day'),
            field(i, 'channel', 'Channel', channel),
            field(i, 'template', 'Template', template)),
          s.covered_by ? h('p', { class: 'muted', text: 'Left out when ' + s.covered_by + ' already covers it.' }) : null,
          s.fallback ? h('p', { class: 'muted', text: 'Falls back to ' + RL.label(s.fallback.channel) + ' (' + s.fallback.template + ') when ' + RL.label(s.channel) + ' cannot reach the lead.' }) : null,
          RL.admin ? h('div', { class: 'row' },
            h('button', { type: 'button', 'aria-label': 'Move step ' + n + ' up', text: '↑ Up', disabled: i === 0, on: { click: move(-1) } }),
            h('button', { type: 'button', 'aria-label': 'Move step ' + n + ' down', text: '↓ Down', disabled: i === steps.length - 1, on: { click: move(1) } }),
            h('button', { type: 'button', 'aria-label': 'Remove step ' + n, text: 'Remove', on: { click: function () { steps.splice(i, 1); changed(); } } })) : null));
    }
    function drawSteps(focusId) {
      list.textContent = '';
      steps.forEach(function (s, i) { list.appendChild(stepRow(s, i)); });
      if (focusId) { var f = document.getElementById(focusId); if (f) f.focus(); }
    }
    var timer;
    function schedule() { clearTimeout(timer); timer = setTimeout(preview, 300); }
    function changed(focusId) { drawSteps(focusId); schedule(); }

    function preview() {
      var body = spec();
      body.timezone = zone.value;
      if (start.value) body.start_at = new Date(start.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
      RL.api('POST', '/api/v1/plans/preview', body).then(function (res) {
        RL.showErrors(form, null);
        previewBox.textContent = '';
        if (res.warnings && res.warnings.length) previewBox.appendChild(h('p', { class: 'error', text: res.warnings.join(' ') }));
        previewBox.appendChild(h('div', { class: 'table-wrap' }, h('table', { id: 'plan-preview' },
          h('thead', null, h('tr', null, h('th', { text: 'Step' }), h('th', { text: 'Channel' }), h('th', { text: 'Template' }), h('th', { text: 'Lead\'s local time (' + res.timezone + ')' }))),
          h('tbody', null, res.touches.map(function (t) {
            return h('tr', null, h('td', { text: t.step }), h('td', { text: RL.label(t.channel) }), h('td', { text: t.template }),
              h('td', null, RL.fmt(t.due_at, res.timezone, true), t.moved_by_window ? h('div', { class: 'muted', text: 'moved into the sending window' }) : null));
          })))));
        previewBox.appendChild(h('p', { class: 'muted', text: res.touches.length + ' touches.' }));
      }).catch(function (e) { RL.showErrors(form, e); });
    }
    function saved(res) {
      status.textContent = 'Saved as version ' + res.version + '.' + (res.warnings && res.warnings.length ? ' Warning: ' + res.warnings.join(' ') : '');
      p = res;
      steps = (res.steps || []).map(function (s) { return Object.assign({}, s); });
      src.value = res.source;
      drawSteps();
    }
    form = h('form', { id: 'plan-form', novalidate: true, on: { submit: function (ev) {
      ev.preventDefault();
      status.textContent = 'Saving…';
      RL.api('PUT', '/api/v1/plans/' + encodeURIComponent(slug), spec()).then(function (res) {
        RL.showErrors(form, null);
        saved(res);
      }).catch(function (e) { status.textContent = ''; RL.showErrors(form, e); });
    } } },
      h('label', { for: 'plan-name', text: 'Name' }), name,
      h('label', { for: 'plan-description', text: 'Description' }), description,
      h('h2', { text: 'Steps' }), list,
      RL.admin ? h('div', { class: 'row' },
        h('button', { type: 'button', id: 'add-step', text: '+ Add a step', on: { click: function () {
          var last = steps[steps.length - 1];
          var nextDay = last && last.day !== undefined && last.day !== null ? last.day + 1 : 1;
          var first = templates.filter(function (t) { return t.channel === 'text'; })[0];
          steps.push({ day: nextDay, at: '10:00', channel: 'text', template: first ? first.slug : '' });
          changed('step-' + (steps.length - 1) + '-when');
        } } }),
        h('button', { type: 'submit', class: 'primary', text: 'Save plan' })) : h('p', { class: 'muted', text: 'Only an admin can change plans.' }),
      status);
    tomlForm = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      RL.api('PUT', '/api/v1/plans/' + encodeURIComponent(slug), { source: src.value }).then(function (res) {
        RL.showErrors(tomlForm, null);
        saved(res);
      }).catch(function (e) { RL.showErrors(tomlForm, e); });
    } } },
      h('label', { for: 'plan-source', text: 'The plan file (TOML: after = "+5m", or day = 3 and at = "10:00"; channel; template)' }), src,
      RL.admin ? h('button', { type: 'submit', text: 'Save the TOML' }) : null);
    zone.addEventListener('change', preview);
    start.addEventListener('change', preview);
    name.addEventListener('input', schedule);
    RL.render(h('div', { class: 'grid2 wide-left' },
      h('div', null, h('div', { class: 'card' }, form), h('details', { class: 'card' }, h('summary', { text: 'Edit as TOML' }), tomlForm)),
      h('div', { class: 'card' }, h('h2', { text: 'Preview for a sample lead' }),
        h('div', { class: 'row' }, h('div', null, h('label', { for: 'zone', text: 'Lead\'s time zone' }), zone),
          h('div', null, h('label', { for: 'start', text: 'Lead comes in at (blank: now)' }), start)),
        previewBox)));
    drawSteps();
    preview();
  }).catch(RL.fail);
})();

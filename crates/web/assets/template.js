// A template's editor: subject, body and voicemail with merge-field help and a live preview
// for a sample lead; an unknown field or bad syntax is shown next to the field, and saving
// is refused until it is fixed.
(function () {
  'use strict';
  var h = RL.h, slug = RL.arg;
  RL.api('GET', '/api/v1/templates/' + encodeURIComponent(slug)).then(function (t) {
    RL.setTitle('Template: ' + t.name);
    var name = h('input', { id: 'tpl-name', name: 'name', 'data-field': 'name', value: t.name });
    var subject = h('input', { id: 'tpl-subject', name: 'subject', 'data-field': 'subject', value: t.subject || '' });
    var body = h('textarea', { id: 'tpl-body', name: 'body', 'data-field': 'body', rows: 14 });
    body.value = t.body;
    var voicemail = h('textarea', { id: 'tpl-voicemail', name: 'voicemail', 'data-field': 'voicemail', rows: 5 });
    voicemail.value = t.voicemail || '';
    var preview = h('div', { class: 'preview', id: 'tpl-preview', 'aria-live': 'polite' });
    var status = h('p', { role: 'status', class: 'muted', id: 'tpl-status' });
    var form, timer;
    function refresh() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        RL.api('POST', '/api/v1/templates/preview', { body: body.value, subject: t.channel === 'email' ? subject.value : null }).then(function (p) {
          RL.showErrors(form, null);
          preview.textContent = '';
          if (p.subject) preview.appendChild(h('p', null, h('strong', { text: p.subject })));
          preview.appendChild(h('div', { class: 'script', text: p.body }));
        }).catch(function (e) { RL.showErrors(form, e); preview.textContent = 'Fix the template to see the preview.'; });
      }, 300);
    }
    [body, subject].forEach(function (e) { e.addEventListener('input', refresh); });
    function insertField(f) {
      var target = document.activeElement === subject ? subject : body;
      var text = '{{ ' + f + ' }}';
      var s = target.selectionStart || target.value.length;
      target.value = target.value.slice(0, s) + text + target.value.slice(target.selectionEnd || s);
      target.focus();
      refresh();
    }
    form = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      status.textContent = 'Saving…';
      var data = { channel: t.channel, name: name.value, body: body.value };
      if (t.channel === 'email') data.subject = subject.value;
      if (voicemail.value.trim()) data.voicemail = voicemail.value;
      RL.api('PUT', '/api/v1/templates/' + encodeURIComponent(slug), data).then(function () {
        RL.showErrors(form, null);
        status.textContent = 'Saved.';
      }).catch(function (e) { status.textContent = 'Not saved: fix the marked field.'; RL.showErrors(form, e); });
    } } },
      h('p', { class: 'muted', text: 'Channel: ' + RL.label(t.channel) + ' · ' + slug }),
      h('label', { for: 'tpl-name', text: 'Name' }), name,
      t.channel === 'email' ? [h('label', { for: 'tpl-subject', text: 'Subject' }), subject] : null,
      h('label', { for: 'tpl-body', text: t.channel === 'call' ? 'Call script' : 'Message' }), body,
      t.channel === 'call' ? [h('label', { for: 'tpl-voicemail', text: 'Voicemail script' }), voicemail] : null,
      RL.admin ? h('button', { type: 'submit', class: 'primary', text: 'Save template' }) : h('p', { class: 'muted', text: 'Only an admin can change templates.' }),
      status);
    RL.render(h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', { text: 'Merge fields' }),
        h('p', { class: 'muted', text: 'Click to insert at the cursor. Anything else in {{ }} is refused when you save.' }),
        h('ul', { class: 'fields' }, (t.merge_fields || []).map(function (f) {
          return h('li', null, h('button', { type: 'button', class: 'link-dark', text: '{{ ' + f + ' }}', on: { click: function () { insertField(f); } } }));
        }))),
      h('div', null, h('div', { class: 'card' }, form), h('div', { class: 'card' }, h('h2', { text: 'Preview (sample lead Jordan Rivera)' }), preview))));
    refresh();
  }).catch(RL.fail);
})();

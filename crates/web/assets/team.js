// Team (admins): invite agents, deactivate with reassignment, and lead intakes with the
// HTML snippet to paste into a website and the open-house kiosk link.
(function () {
  'use strict';
  var h = RL.h;
  function userForm() {
    var form;
    var inputs = ['name', 'email', 'phone', 'password'].map(function (f) {
      return h('input', { id: 'new-' + f, name: f, 'data-field': f, type: f === 'password' ? 'password' : f === 'email' ? 'email' : 'text', autocomplete: 'off' });
    });
    var role = h('select', { id: 'new-role', name: 'role' }, h('option', { value: 'agent', text: 'Agent' }), h('option', { value: 'admin', text: 'Admin' }));
    var status = h('p', { role: 'status', class: 'muted' });
    form = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      var body = { role: role.value };
      inputs.forEach(function (i) { if (i.value) body[i.name] = i.value; });
      RL.api('POST', '/api/v1/users', body).then(function (u) { status.textContent = u.name + ' can now sign in with ' + u.email + '.'; form.reset(); load(); })
        .catch(function (e) { RL.showErrors(form, e); });
    } } },
      h('label', { for: 'new-name', text: 'Name' }), inputs[0], h('label', { for: 'new-email', text: 'Email' }), inputs[1],
      h('label', { for: 'new-phone', text: 'Mobile (for alerts, optional)' }), inputs[2],
      h('label', { for: 'new-password', text: 'First password (share it with them; 8+ characters)' }), inputs[3],
      h('label', { for: 'new-role', text: 'Role' }), role, h('button', { type: 'submit', class: 'primary', text: 'Add to team' }), status);
    return h('section', { class: 'card' }, h('h2', { text: 'Invite an agent' }), form);
  }
  function intakeForm(plans) {
    var source = h('input', { id: 'in-source', name: 'source', 'data-field': 'source' });
    var plan = h('select', { id: 'in-plan', name: 'plan' }, h('option', { value: '', text: 'Level\'s plan (default)' }), plans.map(function (p) { return h('option', { value: p.slug, text: p.name }); }));
    var routing = h('select', { id: 'in-routing', name: 'routing' }, h('option', { value: 'round_robin', text: 'Round-robin among agents' }), h('option', { value: 'pond', text: 'Pond: first agent to claim' }));
    var thanks = h('input', { id: 'in-thanks', name: 'thank_you_url', 'data-field': 'thank_you_url', type: 'url', placeholder: 'https://yoursite.com/thanks' });
    var form = h('form', { on: { submit: function (ev) {
      ev.preventDefault();
      RL.api('POST', '/api/v1/intakes', { source: source.value, plan: plan.value || null, routing: { mode: routing.value }, thank_you_url: thanks.value || null })
        .then(function () { form.reset(); load(); }).catch(function (e) { RL.showErrors(form, e); });
    } } }, h('label', { for: 'in-source', text: 'Source name (e.g. Website, Zillow, Open house 12 Oak Lane)' }), source,
      h('label', { for: 'in-plan', text: 'Plan' }), plan, h('label', { for: 'in-routing', text: 'Who gets the leads' }), routing,
      h('label', { for: 'in-thanks', text: 'Thank-you page after a web form (optional)' }), thanks,
      h('button', { type: 'submit', class: 'primary', text: 'Create intake' }));
    return h('section', { class: 'card' }, h('h2', { text: 'New lead intake' }), form);
  }
  function load() {
    Promise.all([RL.api('GET', '/api/v1/users'), RL.api('GET', '/api/v1/intakes'), RL.api('GET', '/api/v1/plans')]).then(function (r) {
      var users = r[0].items;
      var rows = users.map(function (u) {
        var deact = u.active === false ? h('span', { class: 'muted', text: 'deactivated' }) : (u.email === RL.userEmail ? null : h('button', { type: 'button', text: 'Deactivate', on: { click: function () {
          if (!confirm('Deactivate ' + u.name + '? Their leads and open tasks move to you.')) return;
          RL.api('DELETE', '/api/v1/users/' + u.id).then(load).catch(function (e) { alert(e.message); });
        } } }));
        return h('tr', null, h('td', { text: u.name }), h('td', { text: u.email }), h('td', { text: u.role }), h('td', null, deact));
      });
      var intakes = r[1].items.map(function (i) {
        return h('article', { class: 'card intake' }, h('h3', { text: i.source }),
          h('p', null, 'Webhook: ', h('code', { class: 'url', text: i.url })),
          h('p', null, 'Open-house kiosk: ', h('a', { class: 'url', href: i.signin_url, text: i.signin_url })),
          h('p', { class: 'muted', text: 'Routing: ' + RL.label(i.routing.mode || 'round_robin') + (i.plan ? ' · plan ' + i.plan : '') }),
          h('details', { open: true }, h('summary', { text: 'Form snippet for your website (paste it into any page)' }), h('pre', { class: 'snippet', text: i.snippet })));
      });
      RL.render(h('div', { class: 'grid2' },
        h('div', null, userForm(), intakeForm(r[2].items)),
        h('div', null, h('section', { class: 'card' }, h('h2', { text: 'Team members' }), h('div', { class: 'table-wrap' }, h('table', null,
          h('thead', null, h('tr', null, h('th', { text: 'Name' }), h('th', { text: 'Email' }), h('th', { text: 'Role' }), h('th', { text: '' }))), h('tbody', null, rows)))),
          h('h2', { text: 'Lead intakes' }), intakes.length ? intakes : h('p', { class: 'muted', text: 'No intakes yet.' }))));
    }).catch(RL.fail);
  }
  load();
})();

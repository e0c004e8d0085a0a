// Plans and templates: every plan with its steps, every template by channel, each a link
// to its editor.
(function () {
  'use strict';
  var h = RL.h;
  Promise.all([RL.api('GET', '/api/v1/plans'), RL.api('GET', '/api/v1/templates')]).then(function (r) {
    var plans = r[0].items.map(function (p) {
      return h('article', { class: 'card' },
        h('div', { class: 'spread' }, h('h3', null, h('a', { href: '/plans/' + encodeURIComponent(p.slug), text: p.name })),
          h('span', { class: 'muted', text: (p.steps || []).length + ' steps · version ' + p.version })),
        p.description ? h('p', { text: p.description }) : null,
        p.levels && p.levels.length ? h('p', { class: 'muted', text: 'Starts for: ' + p.levels.join(', ') + ' leads' }) : null);
    });
    var byChannel = {};
    r[1].items.forEach(function (t) { (byChannel[t.channel] = byChannel[t.channel] || []).push(t); });
    var templates = Object.keys(byChannel).sort().map(function (c) {
      return h('div', { class: 'card' }, h('h3', { text: RL.label(c) + ' templates' }),
        h('ul', null, byChannel[c].map(function (t) {
          return h('li', null, h('a', { href: '/templates/' + encodeURIComponent(t.slug), text: t.name }), h('span', { class: 'muted', text: ' · ' + t.slug }));
        })));
    });
    RL.render([h('h2', { text: 'Plans' }), plans, h('h2', { text: 'Templates' }), templates]);
  }).catch(RL.fail);
})();

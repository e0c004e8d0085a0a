// Reports: charts drawn in the page (inline SVG, no library) from /api/v1/reports/summary.
(function () {
  'use strict';
  var h = RL.h, NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // A bar chart: [{label, value, title}], optional reference line at `line` with its label.
  function bars(id, title, data, opts) {
    opts = opts || {};
    var W = 640, H = 240, L = 48, B = 44, T = 12;
    var max = Math.max.apply(null, data.map(function (d) { return d.value; }).concat([opts.line || 0, 1]));
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-labelledby': id + '-t', id: id });
    svg.appendChild(s('title', { id: id + '-t' }, title));
    var bw = Math.min((W - L - 8) / Math.max(data.length, 1), 90);
    for (var g = 0; g <= 4; g++) {
      var y = T + (H - T - B) * (1 - g / 4);
      svg.appendChild(s('line', { x1: L, x2: W, y1: y, y2: y, stroke: '#e5e7eb' }));
      svg.appendChild(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#4b5563' }, opts.fmt ? opts.fmt(max * g / 4) : Math.round(max * g / 4)));
    }
    data.forEach(function (d, i) {
      var bh = (H - T - B) * d.value / max, x = L + i * bw + bw * 0.15;
      var r = s('rect', { x: x, y: H - B - bh, width: bw * 0.7, height: Math.max(bh, 0), fill: d.color || '#1d4ed8', 'class': 'bar' });
      r.appendChild(s('title', {}, d.title || (d.label + ': ' + d.value)));
      svg.appendChild(r);
      svg.appendChild(s('text', { x: x + bw * 0.35, y: H - B + 14, 'text-anchor': 'middle', 'font-size': 10, fill: '#374151' }, d.label));
    });
    if (opts.line !== undefined) {
      // The line sits between bars: the boundary before the bar labelled `line`.
      var idx = data.findIndex(function (d) { return Number(d.label) >= opts.line; });
      var lx = L + (idx < 0 ? data.length : idx) * bw;
      svg.appendChild(s('line', { x1: lx, x2: lx, y1: T, y2: H - B, stroke: '#b91c1c', 'stroke-width': 2, 'stroke-dasharray': '5 4', 'class': 'floor' }));
      svg.appendChild(s('text', { x: lx + 4, y: T + 12, 'font-size': 11, fill: '#b91c1c' }, opts.lineLabel));
    }
    return h('figure', { class: 'chart' }, h('figcaption', null, h('strong', { text: title })), svg);
  }
  function pctRow(label, p) {
    return h('div', { class: 'kpi' }, h('span', { class: 'muted', text: label }), h('b', { text: p.p50_seconds === null ? '—' : RL.duration(p.p50_seconds) }),
      h('span', { class: 'muted', text: 'median · p90 ' + (p.p90_seconds === null ? '—' : RL.duration(p.p90_seconds)) + ' · ' + p.count + ' leads' }));
  }
  var days = h('select', { id: 'days' }, [7, 30, 90, 365].map(function (d) { return h('option', { value: d, text: 'Last ' + d + ' days', selected: d === 30 }); }));
  function load() {
    var since = new Date(Date.now() - Number(days.value) * 86400000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    RL.api('GET', '/api/v1/reports/summary?since=' + encodeURIComponent(since)).then(function (r) {
      var hist = Object.keys(r.attempts_before_contact).map(Number).sort(function (a, b) { return a - b; });
      var maxA = Math.max.apply(null, hist.concat([10]));
      var histData = [];
      for (var a = 1; a <= maxA; a++) histData.push({ label: String(a), value: r.attempts_before_contact[a] || 0, color: a >= 8 ? '#047857' : '#1d4ed8', title: (r.attempts_before_contact[a] || 0) + ' leads answered after ' + a + ' attempts' });
      var speed = Object.keys(r.speed_to_lead_by_day).sort().map(function (d) {
        var p = r.speed_to_lead_by_day[d];
        return { label: d.slice(5), value: Math.round((p.p50_seconds || 0) / 60), title: d + ': median ' + RL.duration(p.p50_seconds || 0) + ' (' + p.count + ' leads)' };
      });
      var ch = Object.keys(r.answer_rate_by_channel).map(function (c) { var x = r.answer_rate_by_channel[c]; return { label: c, value: Math.round(x.rate * 1000) / 10, title: c + ': ' + x.answered + ' answers of ' + x.sent + ' sent' }; });
      var st = Object.keys(r.answer_rate_by_step).map(function (k) { var x = r.answer_rate_by_step[k]; return { label: k.replace('relentless-21', 'r21').replace('speed-to-lead', 'stl'), value: Math.round(x.rate * 1000) / 10, title: k + ': ' + x.answered + ' of ' + x.sent }; });
      var od = Object.keys(r.overdue_tasks_by_agent).map(function (k) { return { label: k.split('@')[0], value: r.overdue_tasks_by_agent[k], color: '#d97706', title: k + ': ' + r.overdue_tasks_by_agent[k] + ' overdue tasks' }; });
      RL.render([
        h('div', { class: 'row' }, h('label', { for: 'days', text: 'Period' }), days,
          h('span', { class: 'muted', id: 'computed-at', text: 'Figures as of ' + RL.fmt(r.computed_at) })),
        h('div', { class: 'kpis' }, pctRow('Speed to lead (first attempt)', r.speed_to_lead), pctRow('Speed to first call', r.speed_to_call),
          h('div', { class: 'kpi' }, h('span', { class: 'muted', text: 'Leads below 8 attempts' }), h('b', { id: 'below8', text: r.leads_below_8_attempts }), h('a', { href: '/leads?below_attempts=8', text: 'See them' }))),
        bars('chart-speed', 'Speed to lead over time (median minutes, by day the lead came in)', speed),
        bars('chart-attempts', 'Attempts before contact (leads that answered)', histData, { line: 8, lineLabel: '8 attempts' }),
        bars('chart-channel', 'Answer rate by channel (%)', ch),
        bars('chart-step', 'Answer rate by step (%)', st),
        bars('chart-overdue', 'Overdue tasks by agent', od)]);
    }).catch(RL.fail);
  }
  days.addEventListener('change', load);
  load();
})();

// Setpoint's status page: every view is drawn from one watch stream of the project
// (GET /api/v1/projects/{p}/watch, NDJSON), kept live without reloads or polling. The token is
// kept in sessionStorage (this tab only) and sent as a bearer header; it never goes in a URL.
'use strict';
(() => {
  const TOKEN_KEY = 'setpoint.token';
  const PROJECT_KEY = 'setpoint.project';
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    project: null,
    projects: [],
    data: emptyData(),
    synced: false,
    live: false,
  };
  let watchControl = null;
  const log = { control: null, run: null, replica: null, lines: [], panel: null, pre: null, status: null };

  function emptyData() {
    return { Run: new Map(), Replica: new Map(), Gateway: new Map(), Source: new Map(), Event: new Map() };
  }

  // --- DOM helpers: text only (textContent), never markup from data ---
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const dash = (v) => (v === undefined || v === null || v === '' ? '—' : String(v));

  function age(iso) {
    if (!iso) return '—';
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }
  function when(iso) { return h('time', { datetime: iso, title: iso, text: age(iso) }); }

  function table(caption, headers, rows, empty) {
    if (!rows.length) return h('p', { class: 'empty', text: empty });
    return h('table', {},
      h('caption', { class: 'visually-muted', text: caption }),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', text: x })))),
      h('tbody', {}, rows));
  }
  function cell(field, ...content) { return h('td', { 'data-field': field }, ...content); }

  // --- status words and their badges (words first: colour is never the only cue) ---
  function cond(obj, type) { return (obj.status.conditions || []).find((c) => c.type === type); }
  function runStatus(r) {
    if (r.deleting) return ['deleting', 'warn'];
    const p = r.status.phase;
    if (p === 'pending' && r.status.desiredReplicas === 0) return ['waiting for requests', 'idle'];
    const stalled = cond(r, 'Stalled');
    if (stalled && stalled.status === 'True') return ['stalled', 'bad'];
    if (p === 'failed') return ['failed', 'bad'];
    const degraded = cond(r, 'Degraded');
    if (degraded && degraded.status === 'True') return [p + ' (degraded)', 'warn'];
    if (p === 'running') return r.status.readyReplicas >= r.status.desiredReplicas ? ['running', 'ok'] : ['running', 'warn'];
    if (p === 'terminated' || p === 'done') return [p, 'idle'];
    return [p, 'warn'];
  }
  function lastError(r) {
    const stalled = cond(r, 'Stalled');
    if (stalled && stalled.status === 'True') return stalled.message;
    if (r.status.phase === 'failed') return r.status.message || r.status.terminationReason;
    const degraded = cond(r, 'Degraded');
    if (degraded && degraded.status === 'True') return degraded.message;
    const ready = cond(r, 'Ready');
    if (ready && ready.status === 'False' && !r.status.phase.startsWith('termin') && r.status.message) return r.status.message;
    return '';
  }
  // YAML of a JSON value, without the properties left unset (null, empty lists and maps).
  function yaml(value, indent = '') {
    const empty = (v) => v === null || v === undefined || (Array.isArray(v) && !v.length) ||
      (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every(empty));
    const scalar = (v) => (typeof v === 'string' ? (/^[\w./:$@-][\w ./:$@{}-]*$/.test(v) && !/^(true|false|null|yes|no|on|off|[\d.]+)$/i.test(v) ? v : JSON.stringify(v)) : String(v));
    if (Array.isArray(value)) {
      return value.filter((v) => !empty(v)).map((v) => (typeof v === 'object' && v !== null
        ? indent + '- ' + yaml(v, indent + '  ').trimStart() : indent + '- ' + scalar(v) + '\n')).join('');
    }
    if (typeof value === 'object' && value !== null) {
      return Object.entries(value).filter(([, v]) => !empty(v)).map(([k, v]) => (typeof v === 'object'
        ? indent + k + ':\n' + yaml(v, indent + '  ') : indent + k + ': ' + scalar(v) + '\n')).join('');
    }
    return indent + scalar(value) + '\n';
  }

  function badge(word, tone) { return h('span', { class: 'badge ' + tone, text: word }); }

  // --- API ---
  function authHeaders() { return { Authorization: 'Bearer ' + state.token }; }
  async function api(path) {
    const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (!r.ok) {
      let message = r.status + ' ' + r.statusText;
      try { message = (await r.json()).error.message || message; } catch (_) { /* not JSON */ }
      const e = new Error(message);
      e.status = r.status;
      throw e;
    }
    return r.json();
  }
  async function* ndjson(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.trim()) yield JSON.parse(line);
      }
    }
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function objectOf(e) { return e.run || e.replica || e.gateway || e.source || e.event; }
  function applyChange(data, e) {
    const map = data[e.kind];
    if (!map) return;
    if (e.type === 'deleted') map.delete(e.name); else map.set(e.name, objectOf(e));
  }

  // The watch: the state up to the first bookmark, then changes; a dropped connection resumes
  // from the last position, an expired one lists again.
  async function watch(project) {
    const control = new AbortController();
    watchControl = control;
    let position = null;
    let failures = 0;
    while (!control.signal.aborted) {
      let snapshot = position === null ? emptyData() : null;
      try {
        const query = position === null ? '' : '?resourceVersion=' + position;
        const r = await fetch('/api/v1/projects/' + enc(project) + '/watch' + query,
          { headers: authHeaders(), signal: control.signal, cache: 'no-store' });
        if (r.status === 401) { signOut('The server no longer accepts this token: sign in again.'); return; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        for await (const e of ndjson(r)) {
          failures = 0;
          if (e.type === 'bookmark') {
            position = e.resourceVersion;
            if (snapshot) { state.data = snapshot; snapshot = null; state.synced = true; setLive(true); schedule(); }
            continue;
          }
          if (e.type === 'expired') { position = null; break; }
          if (snapshot) { applyChange(snapshot, e); continue; }
          position = e.resourceVersion;
          applyChange(state.data, e);
          schedule();
        }
      } catch (err) {
        if (control.signal.aborted) return;
      }
      setLive(false);
      failures += 1;
      await sleep(Math.min(5000, 200 * failures));
    }
  }
  function setLive(on) {
    state.live = on;
    const el = $('live');
    el.textContent = on ? 'live' : 'reconnecting…';
    el.className = 'live ' + (on ? 'on' : 'off');
  }

  // --- rendering: the changes that arrive together are drawn once (a task later, so a hidden
  // tab still keeps up, throttled by the browser); focus stays on the same control ---
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; render(); }, 0);
  }

  function route() {
    const parts = (location.hash.replace(/^#\/?/, '') || 'services').split('/').map(decodeURIComponent);
    return { section: parts[0] || 'services', name: parts[1] };
  }

  function render() {
    if (!state.project) return;
    const { section, name } = route();
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    // A log tail follows only while its service's page is shown.
    if (log.control && !(section === 'services' && name === log.run)) {
      log.control.abort();
      Object.assign(log, { control: null, run: null, replica: null, panel: null });
    }
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focus : null;
    let view;
    if (!state.synced) view = h('p', { class: 'muted', text: 'Loading ' + state.project + '…' });
    else if (section === 'services' && name) view = servicePage(name);
    else if (section === 'services') view = servicesPage();
    else if (section === 'gateways') view = gatewaysPage();
    else if (section === 'sources' && name) view = sourcePage(name);
    else if (section === 'sources') view = sourcesPage();
    else if (section === 'events') view = eventsPage();
    else view = h('p', {}, 'No such page. ', h('a', { href: '#/services', text: 'Services' }));
    const container = $('view');
    container.replaceChildren(view);
    if (focused) {
      const again = container.querySelector('[data-focus="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  function sortedRuns() {
    return [...state.data.Run.values()].sort((a, b) => {
      const fa = ['terminated', 'failed', 'done'].includes(a.status.phase), fb = ['terminated', 'failed', 'done'].includes(b.status.phase);
      if (fa !== fb) return fa ? 1 : -1;
      return a.name.localeCompare(b.name);
    });
  }

  function curlFor(run) {
    const auth = !(run.configuration && run.configuration.auth === false);
    return 'curl -sS ' + run.url + (auth ? ' \\\n  -H "Authorization: Bearer $SETPOINT_TOKEN"' : '');
  }
  function modelCurlFor(run) {
    const model = (run.configuration && run.configuration.model && run.configuration.model.name) || 'MODEL';
    return 'curl -sS ' + run.modelURL + 'chat/completions \\\n  -H "Authorization: Bearer $SETPOINT_TOKEN" \\\n' +
      '  -H "Content-Type: application/json" \\\n  -d \'{"model": "' + model + '", "messages": [{"role": "user", "content": "Hello"}]}\'';
  }
  function copyButton(text, key, label) {
    const button = h('button', { type: 'button', 'data-focus': key, 'aria-label': label, text: 'Copy' });
    button.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(text); button.textContent = 'Copied'; } catch (_) {
        const pre = button.parentElement.querySelector('pre');
        const range = document.createRange();
        range.selectNodeContents(pre);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = 'Selected: press Ctrl+C';
      }
    });
    return button;
  }
  function snippet(text, key, label) {
    return h('div', { class: 'snippet' }, h('pre', { 'data-snippet': key, text }), copyButton(text, key, label));
  }

  function servicesPage() {
    document.title = 'Services · Setpoint';
    const runs = sortedRuns();
    const rows = runs.map((r) => {
      const [word, tone] = runStatus(r);
      const error = lastError(r);
      return h('tr', { 'data-run': r.name, class: tone === 'bad' ? 'warning-row' : null },
        h('th', { scope: 'row' }, h('a', { href: '#/services/' + enc(r.name), 'data-focus': 'run:' + r.name, text: r.name })),
        cell('status', badge(word, tone)),
        cell('ready', r.status.readyReplicas + '/' + r.status.desiredReplicas),
        h('td', { 'data-field': 'url', class: 'wrap' }, h('a', { href: r.url, text: r.url }), r.modelURL ? h('div', { class: 'muted' }, 'model: ' + r.modelURL) : null),
        cell('age', when(r.createdAt)),
        h('td', { 'data-field': 'error', class: 'wrap' + (error ? ' error' : '') , text: dash(error) }));
    });
    return h('section', { 'aria-labelledby': 'title' },
      h('h1', { id: 'title', text: 'Services in ' + state.project }),
      table('Services: status, ready and desired replicas, where they are published', ['Name', 'Status', 'Ready', 'URL', 'Age', 'Last error'], rows,
        'No services yet. Apply one: setpoint apply -f service.dstack.yml'));
  }

  function conditionsTable(conditions) {
    return table('Conditions and since when they hold', ['Type', 'Status', 'Since', 'Reason', 'Message'], (conditions || []).map((c) =>
      h('tr', { 'data-condition': c.type }, h('th', { scope: 'row', text: c.type }), cell('status', c.status),
        cell('since', when(c.lastTransitionTime)), cell('reason', dash(c.reason)), h('td', { class: 'wrap', text: dash(c.message) }))),
    'No conditions yet.');
  }

  function eventsTable(events, withObject) {
    const rows = events.slice(0, 50).map((e) => h('tr', { 'data-event': e.reason, class: e.type === 'Warning' ? 'warning-row' : null },
      cell('seen', when(e.lastTimestamp), e.count > 1 ? ' (×' + e.count + ' over ' + age(e.firstTimestamp) + ')' : ''),
      cell('type', e.type === 'Warning' ? badge('Warning', 'bad') : 'Normal'),
      cell('reason', e.reason),
      withObject ? cell('object', (e.kind === 'ProxyRoute' ? 'route' : e.kind.toLowerCase()) + '/' + e.object) : null,
      h('td', { class: 'wrap', 'data-field': 'message', text: e.message })));
    return table('Events, newest first', ['Last seen', 'Type', 'Reason'].concat(withObject ? ['Object'] : []).concat(['Message']), rows, 'No events.');
  }
  function newestEvents(filter) {
    return [...state.data.Event.values()].filter(filter).sort((a, b) => Date.parse(b.lastTimestamp) - Date.parse(a.lastTimestamp) || b.name.localeCompare(a.name));
  }

  function servicePage(name) {
    document.title = name + ' · Setpoint';
    const r = state.data.Run.get(name);
    if (!r) return h('section', {}, h('h1', { text: name }), h('p', {}, 'There is no service ' + name + ' in ' + state.project + '. ', h('a', { href: '#/services', text: 'All services' })));
    const [word, tone] = runStatus(r);
    const error = lastError(r);
    const finished = (x) => ['terminated', 'done', 'aborted', 'failed'].includes(x.status.phase);
    const replicas = [...state.data.Replica.values()].filter((x) => x.run === name)
      .sort((a, b) => (finished(a) - finished(b)) || a.replicaNum - b.replicaNum || b.submissionNum - a.submissionNum || a.name.localeCompare(b.name));
    const replicaRows = replicas.map((x) => {
      const ready = (x.status.conditions || []).find((c) => c.type === 'Ready');
      const tone = x.status.ready ? 'ok' : (x.status.phase === 'failed' ? 'bad' : (['terminated', 'done', 'aborted'].includes(x.status.phase) ? 'idle' : 'warn'));
      const watching = log.replica === x.name;
      return h('tr', { 'data-replica': x.name },
        h('th', { scope: 'row', text: x.name }),
        cell('phase', badge(x.status.phase, tone)),
        cell('ready', x.status.ready ? 'yes' : 'no'),
        cell('reason', dash(x.status.terminationReason || (ready && ready.reason))),
        h('td', { class: 'wrap', 'data-field': 'message', text: dash(x.status.message) }),
        cell('deployment', String(x.deploymentNum)),
        cell('age', when(x.createdAt)),
        h('td', {}, x.status.workloadID ? h('button', { type: 'button', 'data-focus': 'logs:' + x.name, 'aria-pressed': watching ? 'true' : 'false',
          'aria-label': 'Follow the log of ' + x.name, onclick: () => followLog(name, x.name), text: watching ? 'Following' : 'Logs' }) : null));
    });
    const facts = [
      ['Status', badge(word, tone)], ['Ready', r.status.readyReplicas + ' of ' + r.status.desiredReplicas + ' replicas'],
      ['Deployment', r.status.deploymentNum + ' (generation ' + r.generation + ', observed ' + r.status.observedGeneration + ')'],
      ['URL', h('a', { href: r.url, text: r.url })], r.modelURL ? ['Model URL', r.modelURL] : null,
      r.gateway ? ['Gateway', r.gateway] : null, r.managedBy ? ['Managed by', 'source ' + r.managedBy] : (r.set ? ['Set', r.set] : null),
      ['Created', when(r.createdAt)], error ? ['Last error', h('span', { class: 'error', 'data-field': 'error', text: error })] : null,
    ].filter(Boolean);
    const events = newestEvents((e) => e.run === name || (e.kind === 'Run' && e.object === name));
    return h('section', { 'aria-labelledby': 'title', 'data-service': name },
      h('p', {}, h('a', { href: '#/services', text: '← Services' })),
      h('h1', { id: 'title', text: name }),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      h('h2', { text: 'Call it' }),
      snippet(curlFor(r), 'curl', 'Copy the curl command for ' + name),
      r.modelURL ? [h('h2', { text: 'Call the model (OpenAI-compatible)' }), snippet(modelCurlFor(r), 'model-curl', 'Copy the model curl command')] : null,
      h('h2', { text: 'Conditions' }), conditionsTable(r.status.conditions),
      h('h2', { text: 'Replicas' }),
      table('Replicas with phase and reason', ['Name', 'Phase', 'Ready', 'Reason', 'Message', 'Deployment', 'Age', 'Log'], replicaRows, 'No replicas.'),
      log.run === name && log.panel ? log.panel : null,
      h('h2', { text: 'Events' }), eventsTable(events, true),
      h('h2', { text: 'Applied configuration' }),
      h('p', { class: 'muted', text: 'As the server normalized it (properties left unset are not shown); secrets are shown as their references or hidden.' }),
      h('pre', { 'data-field': 'configuration', text: yaml(r.configuration) }));
  }

  // One replica's log, followed (GET …/runs/{run}/logs?replica=NAME&follow=1): the last 1000 lines.
  function followLog(run, replica) {
    if (log.control) log.control.abort();
    if (log.replica === replica) { log.replica = null; log.run = null; log.panel = null; schedule(); return; }
    const control = new AbortController();
    Object.assign(log, { control, run, replica, lines: [] });
    log.pre = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Log of ' + replica, 'data-log': replica });
    log.status = h('p', { class: 'muted', role: 'status', text: 'Connecting…' });
    log.panel = h('section', { 'aria-labelledby': 'log-title', 'data-log-panel': replica },
      h('h2', { id: 'log-title', text: 'Log of ' + replica }), log.status, log.pre);
    schedule();
    (async () => {
      try {
        const r = await fetch('/api/v1/projects/' + enc(state.project) + '/runs/' + enc(run) + '/logs?follow=1&replica=' + enc(replica),
          { headers: authHeaders(), signal: control.signal, cache: 'no-store' });
        if (!r.ok) { log.status.textContent = 'No log: HTTP ' + r.status; return; }
        log.status.textContent = 'Following (newest at the bottom).';
        for await (const line of ndjson(r)) {
          const text = line.error ? '[' + line.error + ']' : line.text;
          const atBottom = log.pre.scrollTop + log.pre.clientHeight >= log.pre.scrollHeight - 4;
          log.lines.push(text);
          if (log.lines.length > 1000) log.lines.splice(0, log.lines.length - 1000);
          log.pre.textContent = log.lines.join('\n');
          if (atBottom) log.pre.scrollTop = log.pre.scrollHeight;
        }
        log.status.textContent = 'The log ended (the replica stopped).';
      } catch (err) {
        if (!control.signal.aborted) log.status.textContent = 'The log stream broke off: ' + err.message;
      }
    })();
  }

  function gatewaysPage() {
    document.title = 'Gateways · Setpoint';
    const rows = [...state.data.Gateway.values()].sort((a, b) => a.name.localeCompare(b.name)).map((g) => {
      const ready = cond(g, 'Ready');
      const tone = g.deleting ? 'warn' : (ready && ready.status === 'True' ? 'ok' : (g.status.phase === 'failed' ? 'bad' : 'warn'));
      const address = g.status.address ? g.status.address + (g.status.httpPort ? ':' + g.status.httpPort : '') : '';
      return h('tr', { 'data-gateway': g.name },
        h('th', { scope: 'row', text: g.name + (g.isDefault ? ' (default)' : '') }),
        cell('status', badge(g.deleting ? 'deleting' : g.status.phase, tone)),
        cell('ready', g.status.readyReplicas + '/' + g.status.desiredReplicas),
        cell('address', dash(address)), cell('domain', dash(g.status.domain)),
        h('td', { class: 'wrap', 'data-field': 'services', text: dash(g.serviceURLPattern) }),
        cell('age', when(g.createdAt)),
        h('td', { class: 'wrap', 'data-field': 'message', text: dash(g.status.message || (ready && ready.status !== 'True' ? ready.message : '')) }));
    });
    return h('section', { 'aria-labelledby': 'title' }, h('h1', { id: 'title', text: 'Gateways in ' + state.project }),
      table('Gateways', ['Name', 'Status', 'Ready', 'Address', 'Domain', 'Services at', 'Age', 'Message'], rows,
        'No gateways. Services are published by the server at /proxy/services/' + state.project + '/<run>/.'));
  }

  function sourceReady(s) {
    if (s.spec.suspend) return ['suspended', 'idle'];
    const stalled = cond(s, 'Stalled');
    if (stalled && stalled.status === 'True') return ['stalled', 'bad'];
    const ready = cond(s, 'Ready');
    return ready && ready.status === 'True' ? ['ready', 'ok'] : ['reconciling', 'warn'];
  }
  function sourcesPage() {
    document.title = 'Sources · Setpoint';
    const rows = [...state.data.Source.values()].sort((a, b) => a.name.localeCompare(b.name)).map((s) => {
      const [word, tone] = sourceReady(s);
      const objects = s.status.objects || [];
      const synced = objects.filter((o) => o.sync === 'Synced').length, live = objects.filter((o) => o.sync !== 'Pruned').length;
      return h('tr', { 'data-source': s.name },
        h('th', { scope: 'row' }, h('a', { href: '#/sources/' + enc(s.name), 'data-focus': 'source:' + s.name, text: s.name })),
        cell('status', badge(word, tone)),
        cell('revision', s.status.lastApplied ? s.status.lastApplied.commit.slice(0, 12) : '—'),
        cell('objects', synced + '/' + live + ' synced'),
        h('td', { class: 'wrap', text: s.spec.url }),
        h('td', { class: 'wrap', 'data-field': 'message', text: dash(s.status.message) }));
    });
    return h('section', { 'aria-labelledby': 'title' }, h('h1', { id: 'title', text: 'Sources in ' + state.project }),
      table('Git sources', ['Name', 'Status', 'Applied revision', 'Objects', 'Repository', 'Message'], rows,
        'No sources. Sync configurations from Git with: setpoint source create NAME --git URL'));
  }
  function sourcePage(name) {
    document.title = name + ' · Sources · Setpoint';
    const s = state.data.Source.get(name);
    if (!s) return h('section', {}, h('h1', { text: name }), h('p', {}, 'There is no source ' + name + '. ', h('a', { href: '#/sources', text: 'All sources' })));
    const [word, tone] = sourceReady(s);
    const rev = (r) => (r ? r.commit.slice(0, 12) + (r.subject ? ' ' + r.subject : '') : '—');
    const objects = (s.status.objects || []).map((o) => h('tr', { 'data-object': o.kind + '/' + o.name },
      cell('kind', o.kind.toLowerCase()), h('th', { scope: 'row', text: o.name }),
      cell('sync', badge(o.sync, o.sync === 'Synced' ? 'ok' : (o.sync === 'Pruned' ? 'idle' : 'warn'))),
      cell('health', badge(o.health, o.health === 'Healthy' ? 'ok' : (o.health === 'Degraded' || o.health === 'Missing' ? 'bad' : 'warn'))),
      cell('file', dash(o.file)), h('td', { class: 'wrap', text: dash([o.message, o.healthMessage].filter(Boolean).join('; ')) })));
    return h('section', { 'aria-labelledby': 'title', 'data-source-page': name },
      h('p', {}, h('a', { href: '#/sources', text: '← Sources' })),
      h('h1', { id: 'title', text: name }),
      h('dl', { class: 'facts' },
        [['Status', badge(word, tone)], ['Repository', s.spec.url], ['Path', dash(s.spec.path)],
         ['Attempted', rev(s.status.lastAttempted)], ['Applied', rev(s.status.lastApplied)],
         ['Message', dash(s.status.message)], s.status.error ? ['Error', h('span', { class: 'error', text: s.status.error })] : null]
          .filter(Boolean).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      h('h2', { text: 'Objects' }),
      table('Each object of the revision: sync and health', ['Kind', 'Name', 'Sync', 'Health', 'File', 'Message'], objects, 'No objects yet.'),
      h('h2', { text: 'Conditions' }), conditionsTable(s.status.conditions),
      h('h2', { text: 'Events' }), eventsTable(newestEvents((e) => e.kind === 'Source' && e.object === name), false));
  }

  function eventsPage() {
    document.title = 'Events · Setpoint';
    return h('section', { 'aria-labelledby': 'title' }, h('h1', { id: 'title', text: 'Events in ' + state.project }),
      eventsTable(newestEvents(() => true), true));
  }

  // --- session ---
  async function start() {
    try {
      state.projects = await api('/api/v1/projects');
    } catch (e) {
      signOut(e.status === 401 ? 'This token is not valid on this server.' : 'Could not reach the server: ' + e.message);
      return;
    }
    if (!state.projects.length) { signOut('This token has no project.'); return; }
    const wanted = sessionStorage.getItem(PROJECT_KEY);
    state.project = (state.projects.find((p) => p.name === wanted) || state.projects[0]).name;
    const select = $('project');
    select.replaceChildren(...state.projects.map((p) => h('option', { value: p.name, text: p.name, selected: p.name === state.project })));
    $('signin').hidden = true;
    $('nav').hidden = false;
    $('session').hidden = false;
    switchProject(state.project);
  }
  function switchProject(project) {
    if (watchControl) watchControl.abort();
    if (log.control) log.control.abort();
    Object.assign(log, { control: null, run: null, replica: null, panel: null });
    state.project = project;
    state.synced = false;
    state.data = emptyData();
    sessionStorage.setItem(PROJECT_KEY, project);
    setLive(false);
    $('live').textContent = 'connecting…';
    render();
    watch(project);
  }
  function signOut(message) {
    if (watchControl) watchControl.abort();
    if (log.control) log.control.abort();
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.project = null;
    $('view').replaceChildren();
    $('nav').hidden = true;
    $('session').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('token').value = '';
    $('token').focus();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('signin').addEventListener('submit', (event) => {
      event.preventDefault();
      state.token = $('token').value.trim();
      if (!state.token) return;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $('token').value = '';
      start();
    });
    $('signout').addEventListener('click', () => signOut(''));
    $('project').addEventListener('change', (event) => switchProject(event.target.value));
    window.addEventListener('hashchange', () => { render(); $('main').focus(); });
    setInterval(() => { if (state.synced) schedule(); }, 10000);   // ages only: nothing is fetched
    if (state.token) start(); else signOut('');
  });
})();

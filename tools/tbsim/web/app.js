// tbsim's page: plain JavaScript, no build step. The server pushes a snapshot and then every
// change over one EventSource (/api/tbsim/events); the page keeps its state from those and
// redraws what changed once per animation frame. Actions go through the admin API.
'use strict';

const MAX_POINTS = 600; // per chart; older points scroll off
const HISTORY_MS = 15 * 60 * 1000; // what a chart loads when a device is selected
const SCOPES = ['CLIENT_SCOPE', 'SHARED_SCOPE', 'SERVER_SCOPE'];
const KINDS = { fw: 'FIRMWARE', sw: 'SOFTWARE' };

const S = {
  devices: new Map(), // id -> {id, name, token, profile, firmwareId, softwareId, lastActivity, latest, attributes}
  selected: null,
  packages: [],
  profiles: [],
  faults: null,
  inactivity: 60000,
  series: new Map(), // key -> {x: [s], y: [value]} of the selected device
  charts: new Map(), // key -> {div, plot}
  trail: { fw: [], sw: [] }, // [ts, state] of the selected device's updates
  rpc: new Map(), // row -> RPC log entry of the selected device
  gpio: { status: null, note: '' },
};
// server event to DOM, in ms, for bench/page_latency.py
window.tbsimLatency = [];

const $ = (sel) => document.querySelector(sel);

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON: keep the text */ }
  if (!r.ok) {
    const err = new Error((data && data.message) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return data;
}

function rpcCall(did, method, params, timeout, oneway, persistent) {
  const body = { method, params, timeout: timeout || 10000 };
  if (persistent) body.persistent = true; // answered at once with {rpcId}; its state is in the log
  return api('POST', `/api/rpc/${oneway ? 'oneway' : 'twoway'}/${did}`, body);
}

// a PROTOBUF profile's default RPC reply schema carries the reply as JSON text in "payload"
function unwrap(reply) {
  if (reply && typeof reply.payload === 'string') {
    try { return JSON.parse(reply.payload); } catch (e) { return reply; }
  }
  return reply;
}

// a value typed in a form: JSON when it parses, else the text itself
function typed(text) {
  try { return JSON.parse(text); } catch (e) { return text; }
}

const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const ref = (r) => (r && r.id) || null;
const clock = (ts) => (ts ? new Date(ts).toLocaleTimeString() : '');

function ago(ts) {
  if (!ts) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return new Date(ts).toLocaleString();
}

const online = (d) => !!d.lastActivity && Date.now() - d.lastActivity < S.inactivity;

function say(sel, text, bad) {
  const o = $(sel);
  o.textContent = text;
  o.classList.toggle('bad', !!bad);
}

// --- state from the server's events

function upsert(state) {
  const id = state.id.id;
  const d = S.devices.get(id) || {
    id, latest: {}, attributes: { CLIENT_SCOPE: {}, SHARED_SCOPE: {}, SERVER_SCOPE: {} },
  };
  d.name = state.name;
  d.token = state.token;
  d.profile = ref(state.deviceProfileId);
  d.firmwareId = ref(state.firmwareId);
  d.softwareId = ref(state.softwareId);
  d.powerMode = state.powerMode;
  if (state.lastActivity) d.lastActivity = Math.max(d.lastActivity || 0, state.lastActivity);
  if (state.latest) d.latest = state.latest;
  if (state.attributes) d.attributes = state.attributes;
  S.devices.set(id, d);
  return d;
}

const dirty = new Set();
const touched = new Set(); // devices whose list row needs its activity redrawn
let stamps = []; // server times of the telemetry events not yet drawn
let frame = 0;

function mark(...what) {
  for (const w of what) dirty.add(w);
  if (!frame) frame = requestAnimationFrame(render);
}

function apply(ev) {
  const sel = ev.device && ev.device === S.selected;
  switch (ev.type) {
    case 'snapshot': {
      S.devices.clear();
      for (const st of ev.devices) upsert(st);
      S.packages = ev.packages;
      S.profiles = ev.profiles;
      S.faults = ev.faults;
      S.inactivity = ev.inactivityTimeout;
      const want = S.selected || decodeURIComponent(location.hash.slice(1));
      S.selected = null;
      if (S.devices.has(want)) select(want);
      mark('list', 'profiles', 'packages', 'faults', 'detail');
      break;
    }
    case 'device': {
      const known = S.devices.has(ev.device);
      upsert(ev.state);
      mark('list');
      if (sel && !known) select(ev.device); // created by this page: chosen before it was here
      else if (sel) mark('head', 'updates', 'packages');
      break;
    }
    case 'device_deleted':
      S.devices.delete(ev.device);
      if (sel) select(null);
      mark('list');
      break;
    case 'activity': {
      const d = S.devices.get(ev.device);
      if (!d) break;
      d.lastActivity = ev.ts;
      touched.add(ev.device);
      mark('activity');
      break;
    }
    case 'telemetry': {
      const d = S.devices.get(ev.device);
      if (!d) break;
      for (const [ts, values] of ev.entries) {
        for (const [k, v] of Object.entries(values)) {
          if (!d.latest[k] || d.latest[k][0] <= ts) d.latest[k] = [ts, v];
          if (sel) addPoint(k, ts, v);
        }
      }
      stamps.push(ev.t);
      touched.add(ev.device);
      mark('activity');
      if (sel) mark('latest', 'charts', 'updates');
      break;
    }
    case 'attributes': {
      const d = S.devices.get(ev.device);
      if (!d) break;
      const scope = d.attributes[ev.scope] || (d.attributes[ev.scope] = {});
      for (const [k, v] of Object.entries(ev.values || {})) scope[k] = [v, ev.ts];
      for (const k of ev.deleted || []) delete scope[k];
      if (sel) mark(ev.scope);
      break;
    }
    case 'rpc':
      if (sel) {
        S.rpc.set(ev.rpc.row, ev.rpc);
        mark('rpc');
      }
      break;
    case 'rpc_deleted':
      if (sel) {
        S.rpc.delete(ev.row);
        mark('rpc');
      }
      break;
    case 'packages':
      S.packages = ev.packages;
      mark('packages', 'updates');
      break;
    case 'profiles':
      S.profiles = ev.profiles;
      mark('profiles');
      break;
    case 'faults':
      S.faults = ev.faults;
      mark('faults');
      break;
    default:
      break;
  }
}

function addPoint(key, ts, v) {
  const kind = key.slice(0, 2);
  if (key.endsWith('_state') && KINDS[kind] && typeof v === 'string') addTrail(kind, ts, v);
  if (typeof v !== 'number') return;
  let s = S.series.get(key);
  if (!s) S.series.set(key, (s = { x: [], y: [] }));
  const x = ts / 1000;
  let i = s.x.length;
  while (i > 0 && s.x[i - 1] > x) i--; // a spooled reading arrives late: keep time order
  if (i > 0 && s.x[i - 1] === x) s.y[i - 1] = v;
  else {
    s.x.splice(i, 0, x);
    s.y.splice(i, 0, v);
  }
  if (s.x.length > MAX_POINTS) {
    s.x.splice(0, s.x.length - MAX_POINTS);
    s.y.splice(0, s.y.length - MAX_POINTS);
  }
}

function addTrail(kind, ts, state) {
  const t = S.trail[kind];
  if (t.some(([x]) => x === ts)) return;
  t.push([ts, state]);
  t.sort((a, b) => a[0] - b[0]);
}

// --- selecting a device: its history, RPC log and pins are fetched once, then kept live

async function select(id) {
  S.selected = id;
  S.series = new Map();
  S.trail = { fw: [], sw: [] };
  S.rpc = new Map();
  S.gpio = { status: null, note: '' };
  for (const c of S.charts.values()) c.plot && c.plot.destroy();
  S.charts.clear();
  $('#charts').textContent = '';
  history.replaceState(null, '', id ? '#' + encodeURIComponent(id) : '#');
  mark('list', 'detail');
  const d = S.devices.get(id);
  if (!d) return;
  const base = `/api/plugins/telemetry/DEVICE/${id}`;
  const keys = Object.keys(d.latest).filter((k) => typeof d.latest[k][1] === 'number');
  const range = `startTs=${Date.now() - HISTORY_MS}&endTs=${Date.now() + 86400000}`;
  const jobs = [
    api('GET', `/api/tbsim/rpc/${id}`).then((rows) => {
      for (const r of rows) if (!S.rpc.has(r.row)) S.rpc.set(r.row, r);
      mark('rpc');
    }),
    api('GET', `${base}/values/timeseries?keys=fw_state,sw_state&startTs=0&limit=10&useStrictDataTypes=true`)
      .then((data) => {
        for (const kind of Object.keys(KINDS)) {
          for (const p of data[kind + '_state'] || []) addTrail(kind, p.ts, p.value);
        }
        mark('updates');
      }),
    gpioLoad(),
  ];
  if (keys.length) {
    const q = `keys=${keys.map(encodeURIComponent).join(',')}&${range}&limit=${MAX_POINTS}&useStrictDataTypes=true`;
    jobs.push(api('GET', `${base}/values/timeseries?${q}`).then((data) => {
      if (S.selected !== id) return;
      for (const [k, points] of Object.entries(data)) for (const p of points) addPoint(k, p.ts, p.value);
      mark('charts');
    }));
  }
  await Promise.allSettled(jobs);
}

// --- drawing

function render() {
  frame = 0;
  const all = new Set(dirty);
  dirty.clear();
  const d = S.selected && S.devices.get(S.selected);
  if (all.has('list')) renderList();
  else if (all.has('activity')) for (const id of touched) renderRow(id);
  touched.clear();
  if (all.has('profiles')) renderProfiles();
  if (all.has('faults')) renderFaults();
  $('#detail').hidden = !d;
  $('#empty').hidden = !!d;
  if (d) {
    const every = all.has('detail');
    if (every || all.has('head') || all.has('activity')) renderHead(d);
    if (every || all.has('latest')) renderLatest(d);
    if (every || all.has('charts')) renderCharts();
    for (const scope of SCOPES) if (every || all.has(scope)) renderAttributes(d, scope);
    if (every || all.has('gpio')) renderGpio();
    if (every || all.has('rpc')) renderRpc();
    if (every || all.has('updates')) renderUpdates(d);
    if (every || all.has('packages')) renderPackages(d);
  }
  if (stamps.length) {
    const now = Date.now();
    const lat = window.tbsimLatency;
    for (const t of stamps) lat.push(now - t);
    if (lat.length > 20000) lat.splice(0, lat.length - 20000);
    stamps = [];
  }
}

function renderList() {
  const body = $('#devices tbody');
  body.textContent = '';
  const devices = [...S.devices.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const d of devices) {
    const row = h('tr', { class: 'device', dataset: { id: d.id, name: d.name }, onclick: () => select(d.id) },
      h('td', {}, h('span', { class: 'dot' })), h('td', {}, d.name), h('td', { class: 'ago' }));
    row.classList.toggle('selected', d.id === S.selected);
    body.append(row);
    renderRow(d.id, row);
  }
  $('#no-devices').hidden = devices.length > 0;
  const sel = $('#new-device-profile');
  const was = sel.value;
  sel.textContent = '';
  for (const p of S.profiles) sel.append(h('option', { value: p.id.id }, p.name));
  if (was) sel.value = was;
}

function renderRow(id, row) {
  const d = S.devices.get(id);
  row = row || document.querySelector(`#devices tr[data-id="${id}"]`);
  if (!d || !row) return;
  row.querySelector('.dot').className = 'dot ' + (online(d) ? 'on' : 'off');
  row.querySelector('.ago').textContent = ago(d.lastActivity);
  row.dataset.online = online(d) ? '1' : '0';
}

function renderHead(d) {
  $('#d-name').textContent = d.name;
  $('#d-id').textContent = d.id;
  $('#d-token').textContent = d.token || '';
  const p = S.profiles.find((x) => x.id.id === d.profile);
  $('#d-profile').textContent = (p ? p.name : '') + (d.powerMode ? ' · ' + d.powerMode : '');
  $('#d-dot').className = 'dot ' + (online(d) ? 'on' : 'off');
  $('#d-activity').textContent = (online(d) ? 'online · ' : 'offline · ') + 'last activity ' + ago(d.lastActivity);
}

function renderLatest(d) {
  const body = $('#latest tbody');
  body.textContent = '';
  for (const k of Object.keys(d.latest).sort()) {
    const [ts, v] = d.latest[k];
    body.append(h('tr', { dataset: { key: k } }, h('td', {}, k), h('td', { class: 'value' }, show(v)), h('td', { class: 'muted' }, clock(ts))));
  }
}

function renderCharts() {
  const box = $('#charts');
  if (typeof uPlot === 'undefined') {
    box.textContent = 'Charts need uPlot: run make setup.';
    return;
  }
  const width = Math.max(240, Math.floor(box.clientWidth / 2) - 12);
  for (const key of [...S.series.keys()].sort()) {
    const s = S.series.get(key);
    let c = S.charts.get(key);
    if (!c) {
      const div = h('div', { class: 'chart', dataset: { key } }, h('div', { class: 'chart-title' }, key));
      const opts = {
        width, height: 130, legend: { show: false }, cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        series: [{}, { label: key, stroke: '#1f77b4', width: 1.5, points: { show: false } }],
        axes: [{ size: 30 }, { size: 60 }],
      };
      c = { div, plot: new uPlot(opts, [s.x, s.y], div) };
      S.charts.set(key, c);
      const keys = [...S.charts.keys()].sort();
      const next = S.charts.get(keys[keys.indexOf(key) + 1]);
      box.insertBefore(div, next ? next.div : null);
    } else {
      c.plot.setData([s.x, s.y]);
    }
    c.div.dataset.points = String(s.x.length);
  }
}

function renderAttributes(d, scope) {
  const id = { CLIENT_SCOPE: '#attr-client', SHARED_SCOPE: '#attr-shared', SERVER_SCOPE: '#attr-server' }[scope];
  const body = $(id + ' tbody');
  if (body.contains(document.activeElement)) return; // an edit in progress: redrawn on blur
  body.textContent = '';
  const values = d.attributes[scope] || {};
  for (const k of Object.keys(values).sort()) {
    const [v, ts] = values[k];
    if (scope === 'SHARED_SCOPE') {
      const input = h('input', { value: show(v), dataset: { key: k }, 'aria-label': k });
      const save = () => setShared({ [k]: typed(input.value) });
      input.addEventListener('keydown', (e) => e.key === 'Enter' && save());
      body.append(h('tr', { dataset: { key: k } }, h('td', {}, k), h('td', {}, input),
        h('td', {}, h('button', { type: 'button', class: 'small save', onclick: save }, 'save'),
          h('button', { type: 'button', class: 'small', onclick: () => deleteShared(k) }, '✕'))));
    } else {
      body.append(h('tr', { dataset: { key: k } }, h('td', {}, k), h('td', { class: 'value' }, show(v)), h('td', { class: 'muted' }, clock(ts))));
    }
  }
}

function renderGpio() {
  const box = $('#gpio');
  box.textContent = '';
  const st = S.gpio.status;
  if (st) {
    for (const pin of Object.keys(st).sort((a, b) => a - b)) {
      const input = h('input', { type: 'checkbox', dataset: { pin }, 'aria-label': 'GPIO ' + pin, onchange: (e) => gpioSet(pin, e.target) });
      input.checked = !!st[pin];
      box.append(h('label', { class: 'pin' }, h('span', { class: 'switch' }, input, h('span', { class: 'knob' })), ' GPIO ' + pin));
    }
  }
  say('#gpio-result', S.gpio.note, S.gpio.bad);
}

function renderRpc() {
  const body = $('#rpc-log tbody');
  body.textContent = '';
  const rows = [...S.rpc.values()].sort((a, b) => b.row - a.row).slice(0, 12);
  for (const r of rows) {
    body.append(h('tr', { class: 'status-' + r.status }, h('td', {}, r.rpc_id), h('td', {}, r.method),
      h('td', {}, r.status), h('td', { class: 'value' }, r.response === null ? '' : show(r.response))));
  }
}

function renderUpdates(d) {
  const box = $('#updates');
  box.textContent = '';
  for (const [kind, type] of Object.entries(KINDS)) {
    const pid = kind === 'fw' ? d.firmwareId : d.softwareId;
    const pkg = S.packages.find((p) => p.id.id === pid);
    const cur = [d.latest[`current_${kind}_title`], d.latest[`current_${kind}_version`]];
    const state = d.latest[`${kind}_state`];
    const err = d.latest[`${kind}_error`];
    const failed = state && state[1] === 'FAILED' && err && err[0] === state[0];
    box.append(h('div', { class: 'update', id: `${kind}-update` },
      h('b', {}, type === 'FIRMWARE' ? 'Firmware' : 'Software'),
      h('div', {}, 'running ', h('span', { id: `${kind}-current` }, cur[0] ? `${cur[0][1]} ${cur[1] ? cur[1][1] : ''}` : '?')),
      h('div', {}, 'assigned ', pkg ? `${pkg.title} ${pkg.version} ` : 'none ',
        pkg && h('button', { type: 'button', class: 'small', onclick: () => assign(type, null) }, 'unassign')),
      h('div', {}, 'state ', h('span', { id: `${kind}-state`, class: 'state ' + (state ? state[1] : '') }, state ? state[1] : '–'),
        failed ? h('span', { id: `${kind}-error`, class: 'bad' }, ' ' + err[1]) : null),
      h('ol', { class: 'trail' }, S.trail[kind].slice(-8).map(([ts, s]) => h('li', { title: clock(ts), class: 'state ' + s }, s)))));
  }
}

function renderPackages(d) {
  const body = $('#packages tbody');
  body.textContent = '';
  for (const p of S.packages) {
    const mine = p.id.id === (p.type === 'FIRMWARE' ? d.firmwareId : d.softwareId);
    body.append(h('tr', { class: mine ? 'assigned' : '' }, h('td', {}, p.type === 'FIRMWARE' ? 'fw' : 'sw'),
      h('td', {}, p.title), h('td', {}, p.version), h('td', {}, p.dataSize || ''),
      h('td', {}, mine ? 'assigned' : h('button', { type: 'button', class: 'small assign', dataset: { id: p.id.id }, onclick: () => assign(p.type, p.id.id) }, 'assign'),
        h('button', { type: 'button', class: 'small', title: 'delete', onclick: () => api('DELETE', `/api/otaPackage/${p.id.id}`).catch((e) => say('#pkg-result', e.message, true)) }, '✕'))));
  }
}

function renderProfiles() {
  const body = $('#profiles tbody');
  body.textContent = '';
  for (const p of S.profiles) {
    const conf = p.profileData.provisionConfiguration;
    body.append(h('tr', {}, h('td', {}, p.name), h('td', {}, p.provisionType.toLowerCase().replace(/_/g, ' ')),
      h('td', {}, h('code', {}, p.provisionDeviceKey || '')), h('td', {}, h('code', {}, conf.provisionDeviceSecret || ''))));
  }
  mark('list'); // the profile choice of "new device"
}

function renderFaults() {
  const f = S.faults;
  if (!f) return;
  const set = (sel, v) => {
    const e = $(sel);
    if (e !== document.activeElement) e.value = v;
  };
  set('#fault-loss-in', f.in.loss);
  set('#fault-loss-out', f.out.loss);
  set('#fault-delay-in', f.in.delay);
  set('#fault-delay-out', f.out.delay);
  $('#fault-drop').title = `forget every observe relation, as a server restart would (${f.observe_drops} so far)`;
  $('#fault-outage').checked = f.outage;
  document.body.classList.toggle('outage', f.outage);
  const c = (d) => `${d.counters.datagrams} datagrams, ${d.counters.dropped} dropped`;
  $('#fault-counters').textContent = `in: ${c(f.in)} · out: ${c(f.out)} (at the last change)`;
}

// --- actions

async function setShared(values) {
  try {
    await api('POST', `/api/plugins/telemetry/DEVICE/${S.selected}/SHARED_SCOPE`, values);
    say('#shared-result', 'sent: ' + JSON.stringify(values));
  } catch (e) {
    say('#shared-result', e.message, true);
  }
}

async function deleteShared(key) {
  try {
    await api('DELETE', `/api/plugins/telemetry/DEVICE/${S.selected}/SHARED_SCOPE?keys=${encodeURIComponent(key)}`);
  } catch (e) {
    say('#shared-result', e.message, true);
  }
}

async function gpioLoad() {
  const id = S.selected;
  S.gpio = { status: S.gpio.status, note: 'asking the device (getGpioStatus)…' };
  mark('gpio');
  try {
    const r = unwrap(await rpcCall(id, 'getGpioStatus', {}, 10000));
    if (S.selected !== id) return;
    if (r && typeof r === 'object' && !r.error) S.gpio = { status: r, note: '' };
    else S.gpio = { status: null, note: 'getGpioStatus: ' + show(r && r.error ? r.error : r), bad: true };
  } catch (e) {
    if (S.selected !== id) return;
    S.gpio = { status: null, note: `getGpioStatus: ${e.status === 408 ? 'no reply' : e.message}`, bad: true };
  }
  mark('gpio');
}

async function gpioSet(pin, input) {
  const id = S.selected;
  const want = input.checked;
  input.disabled = true;
  S.gpio.note = `setGpioStatus ${pin} → ${want}…`;
  S.gpio.bad = false;
  say('#gpio-result', S.gpio.note);
  try {
    const r = unwrap(await rpcCall(id, 'setGpioStatus', { pin: Number(pin), enabled: want }, 10000));
    if (S.selected !== id) return;
    if (r && r.error) S.gpio.note = `GPIO ${pin}: ${r.error}`;
    else {
      S.gpio.status = r;
      S.gpio.note = `GPIO ${pin} ${r[pin] ? 'on' : 'off'}`;
    }
    S.gpio.bad = !!(r && r.error);
  } catch (e) {
    S.gpio.note = `GPIO ${pin}: ${e.status === 408 ? 'no reply' : e.message}`;
    S.gpio.bad = true;
  }
  mark('gpio');
}

async function assign(type, pid) {
  const key = type === 'FIRMWARE' ? 'firmwareId' : 'softwareId';
  const kind = type === 'FIRMWARE' ? 'fw' : 'sw';
  S.trail[kind] = []; // the trail follows this assignment
  await api('POST', '/api/device', { id: { id: S.selected }, [key]: pid ? { id: pid } : null });
}

async function upload(e) {
  e.preventDefault();
  const file = $('#pkg-file').files[0];
  const type = $('#pkg-type').value;
  const body = { title: $('#pkg-title').value, version: $('#pkg-version').value, type };
  try {
    say('#pkg-result', 'uploading…');
    const pkg = await api('POST', '/api/otaPackage', body);
    const form = new FormData();
    form.append('file', file, file.name);
    await api('POST', `/api/otaPackage/${pkg.id.id}?checksumAlgorithm=SHA256`, form);
    if ($('#pkg-assign').checked) await assign(type, pkg.id.id);
    say('#pkg-result', `${body.title} ${body.version}: ${file.size} bytes uploaded` + ($('#pkg-assign').checked ? ', assigned' : ''));
  } catch (err) {
    say('#pkg-result', err.message, true);
  }
}

async function sendRpc(e) {
  e.preventDefault();
  const out = $('#rpc-result');
  const text = $('#rpc-params').value.trim();
  let params;
  try {
    params = text ? JSON.parse(text) : undefined;
  } catch (err) {
    out.dataset.state = 'error';
    out.textContent = 'params are not JSON: ' + err.message;
    return;
  }
  const oneway = $('#rpc-oneway').checked;
  const persistent = $('#rpc-persistent').checked;
  out.dataset.state = 'waiting';
  out.textContent = 'waiting…';
  try {
    const timeout = Number($('#rpc-timeout').value);
    const r = await rpcCall(S.selected, $('#rpc-method').value, params, timeout, oneway, persistent);
    out.dataset.state = 'reply';
    if (persistent) out.textContent = 'queued: rpcId ' + r.rpcId;
    else out.textContent = oneway ? 'delivered' : JSON.stringify(r, null, 1);
  } catch (err) {
    const timeout = err.status === 408 || err.status === 504;
    out.dataset.state = timeout ? 'timeout' : 'error';
    out.textContent = (timeout ? 'timeout: ' : `error ${err.status}: `) + err.message;
  }
}

async function createDevice(e) {
  e.preventDefault();
  const token = $('#new-device-token').value.trim();
  const body = { name: $('#new-device-name').value.trim(), deviceProfileId: { id: $('#new-device-profile').value } };
  try {
    const d = await api('POST', '/api/device' + (token ? '?accessToken=' + encodeURIComponent(token) : ''), body);
    const creds = await api('GET', `/api/device/${d.id.id}/credentials`);
    say('#new-device-result', `${d.name}: token ${creds.credentialsId}`);
    $('#new-device').reset();
    select(d.id.id);
  } catch (err) {
    say('#new-device-result', err.message, true);
  }
}

async function createProfile(e) {
  e.preventDefault();
  const key = $('#profile-key').value.trim();
  const secret = $('#profile-secret').value.trim();
  const body = {
    name: $('#profile-name').value.trim(), provisionType: $('#profile-type').value, provisionDeviceKey: key,
    profileData: { provisionConfiguration: { provisionDeviceSecret: secret } },
  };
  try {
    await api('POST', '/api/deviceProfile', body);
    say('#new-profile-result', `config.json: "provisioning": {"key": "${key}", "secret": "${secret}"}`);
    $('#new-profile').reset();
    $('#profile-secret').value = randomSecret();
  } catch (err) {
    say('#new-profile-result', err.message, true);
  }
}

function randomSecret() {
  const a = new Uint8Array(10);
  crypto.getRandomValues(a);
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function faultsPost(body, action) {
  const path = '/api/tbsim/faults' + (action ? '/' + action : '');
  api('POST', path, body).catch((err) => say('#fault-counters', err.message, true));
}

// --- wiring

function connect() {
  const es = new EventSource('/api/tbsim/events');
  es.onopen = () => {
    $('#conn').textContent = 'live';
    $('#conn').className = 'conn on';
  };
  es.onerror = () => {
    $('#conn').textContent = 'reconnecting…';
    $('#conn').className = 'conn off';
    document.body.dataset.live = '0';
  };
  es.onmessage = (m) => {
    for (const ev of JSON.parse(m.data)) apply(ev);
    document.body.dataset.live = '1';
  };
}

$('#shared-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setShared({ [$('#shared-key').value.trim()]: typed($('#shared-value').value) });
  $('#shared-form').reset();
});
$('#attr-shared').addEventListener('focusout', () => mark('SHARED_SCOPE'));
$('#gpio-refresh').addEventListener('click', gpioLoad);
$('#rpc-form').addEventListener('submit', sendRpc);
$('#pkg-form').addEventListener('submit', upload);
$('#new-device').addEventListener('submit', createDevice);
$('#new-profile').addEventListener('submit', createProfile);
$('#d-delete').addEventListener('click', () => {
  const d = S.devices.get(S.selected);
  if (d && confirm(`Delete ${d.name}?`)) api('DELETE', `/api/device/${d.id}`).catch((e) => alert(e.message));
});
for (const dir of ['in', 'out']) {
  for (const knob of ['loss', 'delay']) {
    $(`#fault-${knob}-${dir}`).addEventListener('change', (e) => faultsPost({ [dir]: { [knob]: Number(e.target.value) } }));
  }
}
$('#fault-outage').addEventListener('change', (e) => faultsPost({ outage: e.target.checked }));
$('#fault-drop').addEventListener('click', () => faultsPost({}, 'drop-observes'));
$('#profile-secret').value = randomSecret();
// "3 s ago" and online/offline move on without the server
setInterval(() => {
  for (const id of S.devices.keys()) touched.add(id);
  mark('activity');
}, 1000);
window.addEventListener('resize', () => {
  const width = Math.max(240, Math.floor($('#charts').clientWidth / 2) - 12);
  for (const c of S.charts.values()) c.plot.setSize({ width, height: 130 });
});
connect();

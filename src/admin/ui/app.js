// fanout dashboard: a single page over the admin API (/api/v1). No framework and no build step:
// the binary serves this file as it is. Every value from the API goes into the page as text
// (never as HTML). The admin token lives in sessionStorage, never in a URL.
'use strict';

const TOKEN_KEY = 'fanout.admin-token';
const REFRESH_MS = 2000;
let refreshTimer = null;
let generation = 0;

// ---------------------------------------------------------------------------------------------
// DOM and formatting helpers

/** Builds an element: h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, ...). */
function h(tag, attrs, ...children) {
  const svg = ['svg', 'polyline', 'line', 'text', 'g'].includes(tag);
  const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function main() { return document.getElementById('main'); }

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter(Boolean));
}

function fmtTime(iso) {
  if (!iso) return '–';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
}

function ago(iso) {
  if (!iso) return '';
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function fmtRate(value) {
  if (value === null || value === undefined) return '–';
  return value >= 100 ? Math.round(value).toLocaleString() : (Math.round(value * 10) / 10).toString();
}

function fmtNum(value) { return value === null || value === undefined ? '–' : Number(value).toLocaleString(); }
function fmtPct(value) { return value === null || value === undefined ? '–' : `${(value * 100).toFixed(value === 1 ? 0 : 1)}%`; }
function fmtMs(value) { return value === null || value === undefined ? '–' : `${value < 10 ? value.toFixed(2) : Math.round(value)} ms`; }

function badge(text) { return h('span', {class: `badge ${text}`}, text); }
function card(label, value, bad) {
  return h('div', {class: bad ? 'card bad' : 'card'}, h('div', {class: 'label'}, label), h('div', {class: 'value'}, value));
}
function table(headers, rows, attrs) {
  return h('div', {class: 'table-wrap'}, h('table', attrs || {},
    h('thead', {}, h('tr', {}, headers.map((header) => typeof header === 'string' ? h('th', {}, header) : header))),
    rows instanceof HTMLTableSectionElement ? rows : h('tbody', {}, rows)));
}
function errorBox(error) {
  const problem = error && error.problem;
  const details = problem && Array.isArray(problem.errors)
    ? h('ul', {}, problem.errors.map((item) => h('li', {}, `${item.attribute}: ${item.detail}`)))
    : null;
  return h('div', {class: 'error', role: 'alert'}, error.message || String(error), details);
}
function eventLink(source, id, label) {
  return h('a', {href: `#/event?${new URLSearchParams({source, id})}`}, label || id);
}
function subscriberLink(name) { return h('a', {href: `#/subscribers/${encodeURIComponent(name)}`}, name); }

// ---------------------------------------------------------------------------------------------
// The API

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = {accept: 'application/json'};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const init = {method, headers, cache: 'no-store'};
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) throw new Unauthorized('the admin token was not accepted');
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    const error = new Error((json && (json.detail || json.title)) || `HTTP ${response.status}`);
    error.status = response.status;
    error.problem = json;
    throw error;
  }
  return {status: response.status, body: json};
}

async function get(path) { return (await api('GET', path)).body; }

// ---------------------------------------------------------------------------------------------
// Navigation

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  return {path, params: new URLSearchParams(query || '')};
}

async function render() {
  clearTimeout(refreshTimer);
  const mine = ++generation;
  const {path, params} = route();
  const section = path.startsWith('/subscribers') ? 'overview'
    : path.startsWith('/event') ? 'events' : path.replace(/^\//, '') || 'overview';
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.nav === section);
  }
  try {
    if (path === '/' || path === '') await overview(mine);
    else if (path.startsWith('/subscribers/')) await subscriberPage(decodeURIComponent(path.slice('/subscribers/'.length)));
    else if (path === '/event') await eventPage(params.get('source') || '', params.get('id') || '');
    else if (path === '/events') await eventsPage(params);
    else if (path === '/dead-letters') await deadLettersPage(params);
    else if (path === '/routes') await routesPage();
    else show(h('h1', {}, 'Not found'), h('p', {}, h('a', {href: '#/'}, 'Back to the overview')));
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof Unauthorized) { login('That token was not accepted. Sign in again.'); return; }
    show(h('h1', {}, 'Something went wrong'), errorBox(error));
  }
}

function schedule(mine, again) {
  if (mine !== generation) return;
  refreshTimer = setTimeout(() => {
    if (mine !== generation) return;
    again().catch((error) => {
      if (error instanceof Unauthorized) login('That token was not accepted. Sign in again.');
      else schedule(mine, again);
    });
  }, REFRESH_MS);
}

// ---------------------------------------------------------------------------------------------
// Sign in

function login(message) {
  clearTimeout(refreshTimer);
  generation++;
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  const input = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, placeholder: 'admin.token'});
  const form = h('form', {class: 'panel login', id: 'login-form', onsubmit: async (submitted) => {
    submitted.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await get('/api/v1/subscribers');
      signedIn();
    } catch (error) {
      login(error instanceof Unauthorized ? 'That token was not accepted.' : error.message);
    }
  }},
  h('h1', {}, 'Sign in'),
  h('p', {class: 'muted'}, 'The admin API needs its token (admin.token in routes.yaml). It is kept in this browser tab only.'),
  message ? h('div', {class: 'error', role: 'alert'}, message) : null,
  h('label', {class: 'field', for: 'token'}, 'Admin token'), input,
  h('button', {type: 'submit', class: 'primary'}, 'Sign in'));
  show(form);
  input.focus();
}

function signedIn() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = !sessionStorage.getItem(TOKEN_KEY);
  render();
}

// ---------------------------------------------------------------------------------------------
// Overview

function successRate(subscriber) {
  const rate = subscriber.recent && subscriber.recent.success_rate;
  return rate === null || rate === undefined ? 1 : rate;
}

/** How much a subscriber needs attention: 3 disabled or orphaned, 2 paused or failing more often
 *  than not, 1 failing sometimes or holding dead letters, 0 fine. */
function trouble(subscriber) {
  if (subscriber.state === 'disabled' || subscriber.state === 'orphaned') return 3;
  if (subscriber.state === 'paused' || subscriber.circuit === 'open' || successRate(subscriber) < 0.5) return 2;
  if (subscriber.dead_letters > 0 || subscriber.retrying > 0 || successRate(subscriber) < 0.99) return 1;
  return 0;
}

function chart(series, now) {
  // The x axis spans the samples there are (at least a minute, at most the ten minutes kept).
  const width = 600, height = 160;
  const span = Math.max(60 * 1000, series.length ? now - series[0].at_ms : 0);
  const max = Math.max(1, ...series.map((point) => Math.max(point.events_in, point.deliveries_out, point.failed_attempts)));
  const x = (at) => Math.max(0, width - ((now - at) / span) * width);
  const y = (value) => height - 4 - (value / max) * (height - 20);
  const line = (key, css) => h('polyline', {class: `series ${css}`, points: series.map((point) => `${x(point.at_ms).toFixed(1)},${y(point[key]).toFixed(1)}`).join(' ')});
  return h('div', {class: 'chart', id: 'chart'},
    h('svg', {viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Events in and deliveries out per second'},
      h('line', {class: 'axis', x1: 0, y1: height - 4, x2: width, y2: height - 4}),
      h('line', {class: 'axis', x1: 0, y1: 16, x2: width, y2: 16}),
      line('events_in', 's-in'), line('deliveries_out', 's-out'), line('failed_attempts', 's-fail')),
    h('div', {class: 'legend'},
      h('span', {}, h('span', {class: 'swatch s-in'}), 'events in /s'),
      h('span', {}, h('span', {class: 'swatch s-out'}), 'deliveries out /s'),
      h('span', {}, h('span', {class: 'swatch s-fail'}), 'failed attempts /s'),
      h('span', {}, `top line: ${fmtRate(max)}/s · last ${Math.round(span / 60000)} min`)));
}

async function overview(mine) {
  const [stats, list] = await Promise.all([get('/api/v1/stats'), get('/api/v1/subscribers')]);
  if (mine !== generation) return;
  const last = stats.series.length ? stats.series[stats.series.length - 1] : null;
  const totals = stats.totals;
  const subscribers = list.subscribers.slice().sort((a, b) => trouble(b) - trouble(a)
    || successRate(a) - successRate(b) || b.dead_letters - a.dead_letters || a.name.localeCompare(b.name));
  const rows = subscribers.map((subscriber) => {
    const level = trouble(subscriber);
    const recent = subscriber.recent || {};
    const lastError = subscriber.last_error;
    return h('tr', {class: level >= 2 ? 'problem bad' : level > 0 ? 'problem' : null, 'data-subscriber': subscriber.name},
      h('td', {}, subscriberLink(subscriber.name)),
      h('td', {}, badge(subscriber.state),
        subscriber.circuit && subscriber.circuit !== 'closed' ? [' ', h('span', {class: 'badge failed'}, `circuit ${subscriber.circuit.replace('_', '-')}`)] : null,
        subscriber.disabled_reason ? h('div', {class: 'muted'}, subscriber.disabled_reason) : null),
      h('td', {class: 'num'}, fmtNum(subscriber.pending), subscriber.pending_exact ? '' : '+'),
      h('td', {class: 'num'}, fmtNum(subscriber.in_flight)),
      h('td', {class: 'num'}, fmtPct(recent.success_rate)),
      h('td', {class: 'num'}, fmtMs(recent.p99_ms)),
      h('td', {class: 'num'}, subscriber.dead_letters > 0
        ? h('a', {href: `#/dead-letters?${new URLSearchParams({subscriber: subscriber.name})}`}, fmtNum(subscriber.dead_letters))
        : '0'),
      h('td', {}, lastError ? h('span', {}, lastError.error, h('span', {class: 'muted'}, ` · ${ago(lastError.at)}`)) : h('span', {class: 'muted'}, '–')));
  });
  const troubled = subscribers.filter((subscriber) => trouble(subscriber) > 0).length;
  show(
    h('h1', {}, 'Overview'),
    h('div', {class: 'cards', id: 'cards'},
      card('Events in /s', fmtRate(last && last.events_in)),
      card('Deliveries out /s', fmtRate(last && last.deliveries_out)),
      card('Events accepted', fmtNum(totals.accepted)),
      card('Delivered', fmtNum(totals.delivered)),
      card('Failed attempts', fmtNum(totals.failed_attempts), totals.failed_attempts > 0),
      card('Dead-lettered', fmtNum(totals.dead_lettered), totals.dead_lettered > 0),
      card('Rejected', fmtNum(totals.rejected), totals.rejected > 0),
      card('Unrouted', fmtNum(totals.unrouted))),
    h('section', {class: 'panel'}, h('h2', {}, 'Throughput'), chart(stats.series, stats.at_ms)),
    h('section', {class: 'panel'},
      h('h2', {}, 'Subscribers ', troubled ? h('span', {class: 'badge failed'}, `${troubled} need attention`) : h('span', {class: 'badge ok'}, 'all healthy')),
      table(['Subscriber', 'State', h('th', {class: 'num'}, 'Queue'), h('th', {class: 'num'}, 'In flight'),
        h('th', {class: 'num'}, 'Success (5 min)'), h('th', {class: 'num'}, 'p99'), h('th', {class: 'num'}, 'Dead letters'), 'Last error'],
      rows, {id: 'subscribers'})));
  schedule(mine, () => overview(mine));
}

// ---------------------------------------------------------------------------------------------
// One subscriber

async function subscriberPage(name) {
  const subscriber = await get(`/api/v1/subscribers/${encodeURIComponent(name)}`);
  const policy = subscriber.policy;
  const recent = subscriber.recent || {};
  const paused = subscriber.state === 'paused' || subscriber.state === 'disabled';
  const action = async (verb) => {
    await api('POST', `/api/v1/subscribers/${encodeURIComponent(name)}/${verb}`);
    await subscriberPage(name);
  };
  const toggle = paused
    ? h('button', {type: 'button', class: 'primary', id: 'resume', onclick: () => action('resume').catch(showError)}, 'Resume')
    : h('button', {type: 'button', id: 'pause', onclick: () => action('pause').catch(showError)}, 'Pause');
  const failuresOnly = route().params.get('failures') === '1';
  const attempts = subscriber.recent_attempts.filter((attempt) => !failuresOnly || !attempt.ok);
  const rows = attempts.map((attempt) => h('tr', {class: attempt.ok ? null : 'failed'},
    h('td', {}, fmtTime(attempt.at)),
    h('td', {}, eventLink(attempt.source, attempt.event_id), h('div', {class: 'muted'}, attempt.type)),
    h('td', {class: 'num'}, attempt.attempt),
    h('td', {}, attempt.ok ? badge('ok') : badge('failed'), ' ', attempt.status || ''),
    h('td', {class: 'num'}, fmtMs(attempt.latency_ms)),
    h('td', {}, attempt.error || '')));
  const retry = policy.retry;
  show(
    h('h1', {}, subscriber.name, badge(subscriber.state), toggle),
    subscriber.disabled_reason ? h('div', {class: 'error'}, `Disabled: ${subscriber.disabled_reason}`) : null,
    h('div', {class: 'cards'},
      card('Queue', fmtNum(subscriber.pending)),
      card('Retrying', fmtNum(subscriber.retrying), subscriber.retrying > 0),
      card('In flight', fmtNum(subscriber.in_flight)),
      card('Delivered', fmtNum(subscriber.delivered_total)),
      card('Failed attempts', fmtNum(subscriber.failed_attempts_total), subscriber.failed_attempts_total > 0),
      card('Dead letters', fmtNum(subscriber.dead_letters), subscriber.dead_letters > 0),
      card('Success (5 min)', fmtPct(recent.success_rate)),
      card('p50 / p99', `${fmtMs(recent.p50_ms)} / ${fmtMs(recent.p99_ms)}`)),
    h('div', {class: 'grid2'},
      h('section', {class: 'panel'}, h('h2', {}, 'Policy'),
        h('dl', {class: 'props', id: 'policy'},
          h('dt', {}, 'URL'), h('dd', {}, subscriber.url),
          h('dt', {}, 'Mode'), h('dd', {}, policy.mode),
          h('dt', {}, 'Timeout'), h('dd', {}, policy.timeout),
          h('dt', {}, 'Concurrency'), h('dd', {}, policy.concurrency),
          h('dt', {}, 'Retry'), h('dd', {}, `${retry.max_attempts} attempts, ${retry.initial_interval} × ${retry.multiplier} up to ${retry.max_interval}, jitter ${retry.jitter}, for at most ${retry.max_age}`),
          h('dt', {}, 'Retried on'), h('dd', {}, retry.retry_on.join(', ') + ', connection errors and timeouts'),
          h('dt', {}, 'Signed'), h('dd', {}, policy.signing_secrets ? `yes, ${policy.signing_secrets} secret(s)` : 'no'),
          h('dt', {}, 'Rate limit'), h('dd', {}, policy.rate_limit ? `${fmtRate(policy.rate_limit.per_second)}/s, burst ${policy.rate_limit.burst}` : 'none'),
          h('dt', {}, 'Circuit breaker'), h('dd', {}, policy.circuit_breaker
            ? `opens after ${policy.circuit_breaker.failures} failures in a row or ${policy.circuit_breaker.failure_rate * 100}% of ≥ ${policy.circuit_breaker.min_requests} in ${policy.circuit_breaker.window}; open for ${policy.circuit_breaker.open_for}`
            : 'off'),
          h('dt', {}, 'Disable after'), h('dd', {}, policy.disable_after ? `${policy.disable_after} of continuous failure` : 'never'),
          h('dt', {}, 'Ordering'), h('dd', {}, policy.ordering ? `one at a time per ${policy.ordering}` : 'none'),
          h('dt', {}, 'Batches'), h('dd', {}, policy.batch ? `up to ${policy.batch.max_events} events, waiting at most ${policy.batch.max_wait}` : 'off'),
          h('dt', {}, 'Endpoint auth'), h('dd', {}, policy.auth || 'none'),
          h('dt', {}, 'Static headers'), h('dd', {}, policy.header_names.length ? policy.header_names.join(', ') : 'none'))),
      h('section', {class: 'panel'}, h('h2', {}, 'Failures'),
        h('dl', {class: 'props'},
          h('dt', {}, 'Last error'), h('dd', {}, subscriber.last_error ? `${subscriber.last_error.error} (${ago(subscriber.last_error.at)})` : 'none'),
          h('dt', {}, 'Next retry'), h('dd', {}, subscriber.next_retry_at ? fmtTime(subscriber.next_retry_at) : 'none'),
          h('dt', {}, 'Circuit'), h('dd', {id: 'circuit'}, h('span', {class: subscriber.circuit === 'closed' ? 'badge ok' : 'badge failed'}, subscriber.circuit.replace('_', '-')),
            subscriber.circuit_open_until ? ` until ${fmtTime(subscriber.circuit_open_until)}` : ''),
          subscriber.handshake ? [h('dt', {}, 'Handshake'), h('dd', {id: 'handshake'}, subscriber.handshake)] : null,
          h('dt', {}, 'Failing since'), h('dd', {}, subscriber.failing_since ? `${fmtTime(subscriber.failing_since)} (${ago(subscriber.failing_since)})` : '–'),
          h('dt', {}, 'Dead letters'), h('dd', {}, h('a', {href: `#/dead-letters?${new URLSearchParams({subscriber: name})}`}, `${fmtNum(subscriber.dead_letters)} – open the list`))))),
    h('section', {class: 'panel'},
      h('h2', {}, 'Recent deliveries '),
      h('div', {class: 'toolbar'},
        h('a', {href: `#/subscribers/${encodeURIComponent(name)}${failuresOnly ? '' : '?failures=1'}`}, failuresOnly ? 'Show all attempts' : 'Show failures only'),
        h('button', {type: 'button', onclick: () => subscriberPage(name).catch(showError)}, 'Refresh')),
      attempts.length
        ? table(['Time', 'Event', h('th', {class: 'num'}, 'Attempt'), 'Result', h('th', {class: 'num'}, 'Latency'), 'Error'], rows, {id: 'attempts'})
        : h('p', {class: 'muted'}, 'No attempts since the process started.')));
}

function showError(error) {
  if (error instanceof Unauthorized) { login('That token was not accepted. Sign in again.'); return; }
  main().prepend(errorBox(error));
}

// ---------------------------------------------------------------------------------------------
// One event

function attributesOf(event) {
  return Object.entries(event).filter(([key]) => key !== 'data' && key !== 'data_base64');
}

function dataOf(event) {
  if ('data_base64' in event) return `(binary data, ${Math.floor(event.data_base64.length * 3 / 4)} bytes)`;
  if (!('data' in event)) return '(no data)';
  return typeof event.data === 'string' ? event.data : JSON.stringify(event.data, null, 2);
}

async function eventPage(source, id) {
  const found = await get(`/api/v1/events/${encodeURIComponent(id)}?${new URLSearchParams({source})}`);
  const event = found.event;
  const deliveries = found.deliveries.map((delivery) => {
    const steps = delivery.attempts.map((attempt) => {
      const ok = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
      const headers = Object.entries(attempt.response_headers || {});
      return h('li', {class: ok ? null : 'fail'},
        h('strong', {}, `#${attempt.number} `), fmtTime(attempt.at), ' · ',
        attempt.status ? `HTTP ${attempt.status}` : 'no response', ' · ', fmtMs(attempt.latency_ms),
        attempt.error ? h('div', {class: 'muted'}, attempt.error) : null,
        attempt.response_excerpt || headers.length
          ? h('details', {}, h('summary', {}, 'Response'),
            headers.length ? h('pre', {}, headers.map(([key, value]) => `${key}: ${value}`).join('\n')) : null,
            attempt.response_excerpt ? h('pre', {}, attempt.response_excerpt) : null)
          : null);
    });
    const replay = delivery.state === 'dead'
      ? h('button', {type: 'button', onclick: async () => {
        await api('POST', '/api/v1/dead-letters/replay', {ids: [delivery.webhook_id]}).catch(showError);
        eventPage(source, id).catch(showError);
      }}, 'Replay this delivery')
      : null;
    return h('section', {class: 'panel delivery', 'data-subscriber': delivery.subscriber},
      h('h2', {}, subscriberLink(delivery.subscriber), ' ', badge(delivery.state), ' ', replay),
      h('dl', {class: 'props'},
        h('dt', {}, 'webhook-id'), h('dd', {}, h('code', {}, delivery.webhook_id)),
        delivery.next_attempt_at ? [h('dt', {}, 'Next attempt'), h('dd', {}, fmtTime(delivery.next_attempt_at))] : null,
        delivery.reason ? [h('dt', {}, 'Dead because'), h('dd', {}, delivery.reason)] : null,
        delivery.last_error ? [h('dt', {}, 'Last error'), h('dd', {}, delivery.last_error)] : null),
      steps.length ? h('ol', {class: 'timeline'}, steps) : h('p', {class: 'muted'}, 'Not attempted yet.'));
  });
  show(
    h('h1', {}, `Event ${event.id}`),
    h('div', {class: 'grid2'},
      h('section', {class: 'panel'}, h('h2', {}, 'Attributes'),
        h('dl', {class: 'props', id: 'attributes'},
          h('dt', {}, 'accepted'), h('dd', {}, fmtTime(found.accepted_at)),
          attributesOf(event).map(([key, value]) => [h('dt', {}, key), h('dd', {}, typeof value === 'string' ? value : JSON.stringify(value))]))),
      h('section', {class: 'panel'}, h('h2', {}, 'Data'), h('pre', {id: 'data'}, dataOf(event)))),
    h('h2', {}, `Deliveries (${found.deliveries.length})`),
    deliveries.length ? deliveries : h('p', {class: 'muted'}, 'No route matched this event.'));
}

async function eventsPage(params) {
  const fields = ['type_prefix', 'source', 'subject'];
  const inputs = Object.fromEntries(fields.map((field) => [field, h('input', {name: field, value: params.get(field) || ''})]));
  const form = h('form', {class: 'filters', onsubmit: (submitted) => {
    submitted.preventDefault();
    const query = new URLSearchParams();
    for (const field of fields) if (inputs[field].value.trim()) query.set(field, inputs[field].value.trim());
    location.hash = `#/events?${query}`;
  }},
  fields.map((field) => h('label', {class: 'field'}, field.replace('_', ' '), inputs[field])),
  h('button', {type: 'submit', class: 'primary'}, 'Search'));
  const query = new URLSearchParams();
  for (const field of fields) if (params.get(field)) query.set(field, params.get(field));
  query.set('limit', '200');
  const page = await get(`/api/v1/events?${query}`);
  const rows = page.items.slice().reverse().map((event) => h('tr', {},
    h('td', {}, fmtTime(event.accepted_at)),
    h('td', {}, eventLink(event.source, event.id)),
    h('td', {}, event.type),
    h('td', {class: 'hide-narrow'}, event.source),
    h('td', {}, event.subscribers.join(', '))));
  show(h('h1', {}, 'Events'),
    h('section', {class: 'panel'}, form,
      rows.length ? table(['Accepted', 'Id', 'Type', h('th', {class: 'hide-narrow'}, 'Source'), 'Subscribers'], rows, {id: 'events'})
        : h('p', {class: 'muted'}, 'No retained event matches.'),
      page.next !== null && page.items.length >= 200 ? h('p', {class: 'muted'}, 'Showing the oldest 200 matches; narrow the search.') : null));
}

// ---------------------------------------------------------------------------------------------
// Dead letters

const LETTER_FILTERS = ['subscriber', 'reason', 'status', 'since', 'until'];

function toLocalInput(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

async function deadLettersPage(params) {
  const filters = {};
  for (const key of LETTER_FILTERS) if (params.get(key)) filters[key] = params.get(key);
  const [list, first] = await Promise.all([get('/api/v1/subscribers'), get(`/api/v1/dead-letters?${new URLSearchParams({...filters, limit: '100'})}`)]);
  const items = first.items.slice();
  let next = first.next;
  const selected = new Set();
  let allMatching = false;

  const subscriberSelect = h('select', {name: 'subscriber', id: 'filter-subscriber'},
    h('option', {value: ''}, 'all subscribers'),
    list.subscribers.map((subscriber) => h('option', {value: subscriber.name, selected: subscriber.name === filters.subscriber}, subscriber.name)));
  const reasonInput = h('input', {name: 'reason', id: 'filter-reason', value: filters.reason || '', placeholder: 'e.g. exhausted'});
  const statusInput = h('input', {name: 'status', id: 'filter-status', type: 'number', min: 100, max: 599, value: filters.status || '', placeholder: '503'});
  const sinceInput = h('input', {name: 'since', type: 'datetime-local', value: toLocalInput(filters.since)});
  const untilInput = h('input', {name: 'until', type: 'datetime-local', value: toLocalInput(filters.until)});
  const form = h('form', {class: 'filters', id: 'dead-letter-filters', onsubmit: (submitted) => {
    submitted.preventDefault();
    const query = new URLSearchParams();
    if (subscriberSelect.value) query.set('subscriber', subscriberSelect.value);
    if (reasonInput.value.trim()) query.set('reason', reasonInput.value.trim());
    if (statusInput.value) query.set('status', statusInput.value);
    if (sinceInput.value) query.set('since', new Date(sinceInput.value).toISOString());
    if (untilInput.value) query.set('until', new Date(untilInput.value).toISOString());
    location.hash = `#/dead-letters?${query}`;
  }},
  h('label', {class: 'field'}, 'Subscriber', subscriberSelect),
  h('label', {class: 'field'}, 'Reason contains', reasonInput),
  h('label', {class: 'field'}, 'Last status', statusInput),
  h('label', {class: 'field'}, 'Dead since', sinceInput),
  h('label', {class: 'field'}, 'Dead until', untilInput),
  h('button', {type: 'submit', class: 'primary'}, 'Filter'),
  h('a', {href: '#/dead-letters'}, 'Clear'));

  const status = h('div', {id: 'dead-letter-status'});
  const selection = h('span', {id: 'selection', class: 'muted'});
  const selectAll = h('button', {type: 'button', class: 'link', id: 'select-all-matching'});
  const replayButton = h('button', {type: 'button', class: 'primary', id: 'replay'}, 'Replay…');
  const purgeButton = h('button', {type: 'button', class: 'danger', id: 'purge'}, 'Purge…');
  const pageBox = h('input', {type: 'checkbox', id: 'select-page', 'aria-label': 'Select this page'});
  const body = h('tbody', {});
  const more = h('button', {type: 'button', id: 'more'}, 'Load more');

  const refreshSelection = () => {
    const count = allMatching ? 'All dead letters matching the filters are selected' : `${selected.size} selected`;
    selection.textContent = count;
    selectAll.textContent = allMatching ? 'Clear selection' : 'Select all matching the filters';
    replayButton.disabled = purgeButton.disabled = !allMatching && selected.size === 0;
    pageBox.checked = allMatching || (items.length > 0 && items.every((item) => selected.has(item.webhook_id)));
    for (const box of body.querySelectorAll('input[type=checkbox]')) box.checked = allMatching || selected.has(box.value);
    more.hidden = !next;
  };
  const addRows = (letters) => {
    for (const letter of letters) {
      const box = h('input', {type: 'checkbox', value: letter.webhook_id, 'aria-label': `Select ${letter.webhook_id}`, onchange: () => {
        allMatching = false;
        if (box.checked) selected.add(letter.webhook_id); else selected.delete(letter.webhook_id);
        refreshSelection();
      }});
      body.append(h('tr', {'data-webhook-id': letter.webhook_id},
        h('td', {}, box),
        h('td', {}, subscriberLink(letter.subscriber)),
        h('td', {}, eventLink(letter.event.source, letter.event.id), h('div', {class: 'muted'}, letter.event.type)),
        h('td', {}, letter.reason),
        h('td', {class: 'num'}, letter.last_status || '–'),
        h('td', {class: 'num'}, letter.attempts),
        h('td', {}, fmtTime(letter.dead_at)),
        h('td', {class: 'hide-narrow'}, h('code', {}, letter.webhook_id))));
    }
  };
  pageBox.addEventListener('change', () => {
    allMatching = false;
    for (const item of items) { if (pageBox.checked) selected.add(item.webhook_id); else selected.delete(item.webhook_id); }
    refreshSelection();
  });
  selectAll.addEventListener('click', () => {
    allMatching = !allMatching;
    selected.clear();
    refreshSelection();
  });
  more.addEventListener('click', async () => {
    try {
      const page = await get(`/api/v1/dead-letters?${new URLSearchParams({...filters, limit: '100', after: next})}`);
      items.push(...page.items);
      next = page.next;
      addRows(page.items);
      refreshSelection();
    } catch (error) { showError(error); }
  });

  // The selection as a request body: the filters (all matching) or the chosen ids.
  const selectionBody = () => {
    if (allMatching) {
      const bodyFilters = {...filters};
      if (bodyFilters.status) bodyFilters.status = Number(bodyFilters.status);
      return bodyFilters;
    }
    return {ids: [...selected]};
  };
  const act = async (verb) => {
    status.replaceChildren();
    const path = verb === 'replay' ? '/api/v1/dead-letters/replay' : '/api/v1/dead-letters/purge';
    const dry = await api('POST', path, {...selectionBody(), dry_run: true});
    const matched = dry.body.matched;
    if (matched === 0) { status.replaceChildren(h('div', {class: 'notice'}, 'Nothing matches any more; the list may be out of date.')); return; }
    const what = verb === 'replay'
      ? `Replay ${matched} dead letter${matched === 1 ? '' : 's'}? They go back to their queues with a fresh retry budget, due now.`
      : `Purge ${matched} dead letter${matched === 1 ? '' : 's'}? They are deleted for good.`;
    const confirmBox = h('div', {class: 'confirm', id: 'confirm', role: 'alertdialog'},
      h('span', {id: 'confirm-text'}, what),
      h('button', {type: 'button', class: verb === 'replay' ? 'primary' : 'danger', id: 'confirm-yes', onclick: async () => {
        confirmBox.remove();
        try {
          const done = await api('POST', path, selectionBody());
          let count = done.body.done;
          if (done.status === 202) count = await followJob(done.body.job, status);
          status.replaceChildren(h('div', {class: 'notice', id: 'action-result'},
            `${verb === 'replay' ? 'Replayed' : 'Purged'} ${count} dead letter${count === 1 ? '' : 's'}.`));
          setTimeout(() => { if (route().path === '/dead-letters') deadLettersPage(params).then(() => {
            document.getElementById('dead-letter-status').replaceChildren(h('div', {class: 'notice', id: 'action-result'},
              `${verb === 'replay' ? 'Replayed' : 'Purged'} ${count} dead letter${count === 1 ? '' : 's'}.`));
          }).catch(showError); }, 300);
        } catch (error) { showError(error); }
      }}, verb === 'replay' ? `Replay ${matched}` : `Purge ${matched}`),
      h('button', {type: 'button', id: 'confirm-no', onclick: () => confirmBox.remove()}, 'Cancel'));
    status.replaceChildren(confirmBox);
  };
  replayButton.addEventListener('click', () => act('replay').catch(showError));
  purgeButton.addEventListener('click', () => act('purge').catch(showError));

  addRows(items);
  show(h('h1', {}, 'Dead letters'),
    h('section', {class: 'panel', 'data-query': new URLSearchParams(filters).toString()}, form,
      status,
      h('div', {class: 'toolbar'}, selection, selectAll, replayButton, purgeButton),
      items.length
        ? table([h('th', {}, pageBox), 'Subscriber', 'Event', 'Reason', h('th', {class: 'num'}, 'Status'), h('th', {class: 'num'}, 'Attempts'), 'Dead at', h('th', {class: 'hide-narrow'}, 'webhook-id')],
          body, {id: 'dead-letters'})
        : h('p', {class: 'muted', id: 'no-dead-letters'}, 'No dead letters match.'),
      more));
  refreshSelection();
}

/** Polls a background job until it finishes; returns how many it did. */
async function followJob(path, status) {
  for (;;) {
    const job = await get(path);
    status.replaceChildren(h('div', {class: 'notice'}, `Working: ${job.done} of ${job.total}…`));
    if (job.finished) {
      if (job.error) throw new Error(job.error);
      return job.done;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// ---------------------------------------------------------------------------------------------
// Routes

/** A filter in the routes file's YAML form. */
function yaml(value, indent) {
  const pad = '  '.repeat(indent);
  if (Array.isArray(value)) return value.map((item) => `${pad}- ${yaml(item, indent + 1).trimStart()}`).join('\n');
  if (value && typeof value === 'object') {
    return Object.entries(value).map(([key, inner]) => inner && typeof inner === 'object'
      ? `${pad}${key}:\n${yaml(inner, indent + 1)}`
      : `${pad}${key}: ${JSON.stringify(inner)}`).join('\n');
  }
  return `${pad}${JSON.stringify(value)}`;
}

const SAMPLE_EVENT = JSON.stringify({
  specversion: '1.0', id: 'test-1', source: '/shop/eu', type: 'com.example.shop.order.created',
  subject: 'order-1001', datacontenttype: 'application/json', data: {order: 'order-1001', total: 42.5},
}, null, 2);

async function routesPage() {
  const table_ = await get('/api/v1/routes');
  const reload = table_.last_reload;
  const reloadBox = h('div', {id: 'reload-status'},
    reload === null ? h('p', {class: 'muted'}, 'Not reloaded since the process started.')
      : reload.ok ? h('p', {}, badge('ok'), ` Last reload ${fmtTime(reload.at)} succeeded.`)
        : h('div', {class: 'error'}, `The last reload (${fmtTime(reload.at)}) failed; the routes below are still in force. The file on disk:`,
          h('ul', {}, reload.errors.map((error) => h('li', {}, error)))));
  const reloadButton = h('button', {type: 'button', id: 'reload', onclick: async () => {
    try {
      const done = await api('POST', '/api/v1/reload');
      await routesPage();
      const diff = Object.entries(done.body.diff).filter(([, names]) => names.length).map(([key, names]) => `${key.replace(/_/g, ' ')}: ${names.join(', ')}`);
      document.getElementById('reload-status').prepend(h('div', {class: 'notice'}, diff.length ? `Reloaded. ${diff.join('; ')}` : 'Reloaded; nothing changed.'));
    } catch (error) {
      if (error.status === 422) await routesPage(); else showError(error);
    }
  }}, 'Reload routes.yaml now');
  const rows = table_.routes.map((entry) => h('tr', {},
    h('td', {}, entry.name),
    h('td', {}, entry.filter ? h('pre', {class: 'filter'}, yaml(entry.filter, 0)) : h('span', {class: 'muted'}, 'every event')),
    h('td', {}, entry.to.map((name, index) => [index ? ', ' : '', subscriberLink(name)]))));
  const input = h('textarea', {id: 'test-event', spellcheck: 'false', 'aria-label': 'Event to test'}, SAMPLE_EVENT);
  const result = h('div', {id: 'test-result'});
  const tester = h('form', {id: 'route-tester', onsubmit: async (submitted) => {
    submitted.preventDefault();
    try {
      const answer = (await api('POST', '/api/v1/routes/test', input.value)).body;
      result.replaceChildren(
        h('p', {id: 'reached'}, answer.subscribers.length
          ? ['Reaches: ', answer.subscribers.map((name, index) => [index ? ', ' : '', subscriberLink(name)])]
          : 'No subscriber: the event would be stored and counted as unrouted.'),
        answer.routes.map((verdict) => h('div', {class: verdict.matched ? 'verdict match' : 'verdict'},
          h('strong', {}, `${verdict.matched ? 'MATCH' : 'no match'} · ${verdict.route}`), ` → ${verdict.to.join(', ')}`,
          h('pre', {}, verdict.reasons.join('\n')))));
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      result.replaceChildren(errorBox(error));
    }
  }},
  input, h('p', {}, h('button', {type: 'submit', class: 'primary'}, 'Test')));
  show(h('h1', {}, 'Routes'),
    h('section', {class: 'panel'}, h('h2', {}, 'Reload'), h('p', {class: 'muted'}, `File: ${table_.file}`), reloadBox, reloadButton),
    h('section', {class: 'panel'}, h('h2', {}, `Routing table (${table_.routes.length} routes)`),
      table(['Route', 'Filters', 'Subscribers'], rows, {id: 'routes'})),
    h('section', {class: 'panel'}, h('h2', {}, 'Route tester'),
      h('p', {class: 'muted'}, 'Paste an event in the CloudEvents JSON format: see which routes and subscribers it reaches, and why. Nothing is stored or delivered.'),
      tester, result));
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  document.getElementById('logout').addEventListener('click', () => login('Signed out.'));
  window.addEventListener('hashchange', () => render());
  const auth = await (await fetch('/ui/auth', {cache: 'no-store'})).json();
  if (auth.token_required && !sessionStorage.getItem(TOKEN_KEY)) login();
  else signedIn();
}

start().catch((error) => show(errorBox(error)));

// @ts-check
/**
 * The sync console's pages: Overview, Operations (a run and its errors), Search (metaverse) with an
 * object's lineage, Events. Data from /console/api (types in src/console/api-types.ts).
 */
import { api, errorBox, fill, h, start, table, when } from './common.js';

/** @typedef {import('../src/console/api-types.js').Overview} Overview */
/** @typedef {import('../src/console/api-types.js').RunList} RunList */
/** @typedef {import('../src/console/api-types.js').SearchResult} SearchResult */
/** @typedef {import('../src/console/api-types.js').Lineage} Lineage */
/** @typedef {import('../src/console/api-types.js').EventList} EventList */
/** @typedef {import('../src/engine/runs.js').RunRecord} RunRecord */
/** @typedef {import('../src/console/api-types.js').RunDetail} RunDetail */

const BASE = '/console';

/** @param {Record<string, unknown>} attrs */
function attrTable(attrs) {
  return table(
    ['attribute', 'value'],
    Object.entries(attrs).map(([k, v]) => [k, Array.isArray(v) ? v.join('; ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)]),
  );
}

/** @param {HTMLElement} main */
async function overview(main) {
  /** @type {Overview} */
  const o = await api(`${BASE}/api/overview`);
  const hl = o.health;
  const runButton = h('button', { type: 'button', id: 'run-cycle', onclick: () => {
    runButton.setAttribute('disabled', '');
    api(`${BASE}/api/cycle`, { method: 'POST' })
      .then(() => (status.textContent = 'Cycle started: see Operations.'))
      .catch((e) => status.replaceChildren(errorBox(e)))
      .finally(() => runButton.removeAttribute('disabled'));
  } }, 'Run a sync cycle now');
  const status = h('p', { role: 'status' });
  fill(main, 
    h('h1', null, 'Overview'),
    h('p', { id: 'health', class: hl.status === 'ok' ? 'ok' : 'warn' }, `Health: ${hl.status}`),
    o.degraded.length
      ? h('ul', { class: 'degraded' }, o.degraded.map((d) => h('li', null, h('strong', null, d.check), `: ${d.reason}`, h('br'), h('span', { class: 'fix' }, `Fix: ${d.fix}`))))
      : null,
    h('section', null,
      h('h2', null, 'Last cycle'),
      o.lastRun
        ? h('div', null,
            h('p', null, `Run `, h('a', { href: `#/operations/${o.lastRun.id}` }, `#${o.lastRun.id}`), ` ${o.lastRun.status}, started ${when(o.lastRun.startedAt)}`),
            table(['connector', 'step', 'status', 'adds', 'updates', 'deletes', 'unchanged', 'errors'],
              o.lastRun.steps.map((s) => [s.connector, s.step, s.status, s.adds, s.updates, s.deletes, s.unchanged, s.errors]), 'last cycle per connector'))
        : h('p', { class: 'muted' }, 'No cycle yet.'),
      runButton, status),
    h('section', null,
      h('h2', null, 'Password hash sync'),
      table(['outbox depth', 'oldest queued', 'heartbeat'], [[hl.passwords.outboxDepth, when(hl.passwords.oldestQueuedAt ?? ''), when(hl.passwords.heartbeatAt ?? '')]])),
    h('section', null,
      h('h2', null, 'Credentials'),
      table(['name', 'changed', 'last test', 'result'], hl.credentials.map((c) => [c.name, when(c.changedAt ?? ''), when(c.lastTestAt ?? ''), c.lastTestOk === null ? '—' : c.lastTestOk ? 'worked' : `refused (${c.lastErrorCode ?? ''})`]))),
  );
}

/** @param {RunRecord} r @param {'adds' | 'updates' | 'deletes' | 'errors'} k */
const exported = (r, k) => r.steps.filter((s) => s.step === 'export').reduce((n, s) => n + s[k], 0);

/** @param {HTMLElement} main @param {string | undefined} id */
async function operations(main, id) {
  if (id) {
    /** @type {RunDetail} */
    const r = await api(`${BASE}/api/runs/${encodeURIComponent(id)}`);
    fill(main, 
      h('h1', null, `Run #${r.id}: ${r.status}`),
      h('p', null, `${r.profile}, ${when(r.startedAt)} → ${when(r.endedAt ?? '')}`, r.error ? ` — ${r.error.code}: ${r.error.message}` : ''),
      table(['connector', 'step', 'status', 'adds', 'updates', 'deletes', 'unchanged', 'errors'], r.steps.map((s) => [s.connector, s.step, s.status, s.adds, s.updates, s.deletes, s.unchanged, s.errors]), 'steps'),
      h('h2', null, `Errors (${r.errorCount})`),
      table(['connector', 'step', 'object', 'code', 'message'], r.errors.map((e) => [e.connector, e.step, e.mvId !== null ? h('a', { href: `#/objects/${e.mvId}` }, e.object ?? `#${e.mvId}`) : e.object ?? '', e.code, e.message]), 'errors'),
    );
    return;
  }
  /** @type {RunList} */
  const list = await api(`${BASE}/api/runs`);
  fill(main, 
    h('h1', null, 'Operations'),
    table(['run', 'profile', 'status', 'started', 'exported', 'errors'],
      list.runs.map((r) => [h('a', { href: `#/operations/${r.id}` }, `#${r.id}`), r.profile, r.status, when(r.startedAt), `+${exported(r, 'adds')} ~${exported(r, 'updates')} -${exported(r, 'deletes')}`, r.errorCount]), 'runs'),
  );
}

/** @param {HTMLElement} main */
async function search(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const attr = /** @type {HTMLInputElement} */ (h('input', { id: 'attr', name: 'attr', value: params.get('attr') ?? 'mail', required: true }));
  const op = /** @type {HTMLSelectElement} */ (h('select', { id: 'op', name: 'op' }, h('option', { value: 'eq' }, 'equals'), h('option', { value: 'sw' }, 'starts with')));
  op.value = params.get('op') ?? 'eq';
  const value = /** @type {HTMLInputElement} */ (h('input', { id: 'value', name: 'value', value: params.get('value') ?? '', required: true }));
  const results = h('div', { id: 'results' });
  /** @param {number} after */
  const run = async (after) => {
    const q = new URLSearchParams({ attr: attr.value, op: op.value, value: value.value, after: String(after) });
    try {
      /** @type {SearchResult} */
      const r = await api(`${BASE}/api/search?${q}`);
      fill(results, 
        table(['id', 'type', 'name', 'source anchor'], r.objects.map((o) => [h('a', { href: `#/objects/${o.id}` }, `#${o.id}`), o.objectType, o.display, o.sourceAnchor]), 'search results'),
        r.next !== null ? h('button', { type: 'button', onclick: () => void run(/** @type {number} */ (r.next)) }, 'Next page') : null,
      );
    } catch (e) {
      fill(results, errorBox(e));
    }
  };
  fill(main, 
    h('h1', null, 'Search the metaverse'),
    h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); void run(0); } },
      h('label', { for: 'attr' }, 'Attribute'), attr, h('label', { for: 'op' }, 'Operator'), op, h('label', { for: 'value' }, 'Value'), value,
      h('button', { type: 'submit' }, 'Search')),
    results,
  );
  if (value.value) await run(0);
}

/** @param {HTMLElement} main @param {string} id */
async function object(main, id) {
  /** @type {Lineage} */
  const l = await api(`${BASE}/api/objects/${encodeURIComponent(id)}`);
  const mv = l.metaverse;
  fill(main, 
    h('h1', null, `Object #${mv.id} (${mv.objectType})`),
    h('ol', { class: 'lineage', 'aria-label': 'lineage' },
      l.connectorSpace.map((c) => h('li', null, h('strong', null, 'Connector space '), `${c.connector}: ${c.dn}`, c.pending ? ` (pending ${c.pending})` : '')),
      h('li', null, h('strong', null, 'Metaverse '), `#${mv.id}, anchor ${mv.sourceAnchor}${mv.pendingExport ? ' (export pending)' : ''}${mv.deleted ? ' (deleted)' : ''}`),
      h('li', { id: 'cloud-resource' }, h('strong', null, 'Cloud resource '), l.cloud ? `${l.cloud.resourceId ?? 'not created yet'}${l.cloud.lastError ? ` — last error: ${l.cloud.lastError}` : ''}` : 'not exported yet')),
    h('h2', null, 'Metaverse attributes'),
    attrTable(mv.attrs),
    l.connectorSpace.map((c) => [h('h2', null, `Connector space: ${c.connector}`), attrTable(c.attrs)]),
  );
}

/** @param {HTMLElement} main */
async function events(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const level = /** @type {HTMLSelectElement} */ (h('select', { id: 'level', name: 'level' }, ['', 'Error', 'Warning', 'Information'].map((l) => h('option', { value: l }, l || 'any level'))));
  level.value = params.get('level') ?? '';
  const id = /** @type {HTMLInputElement} */ (h('input', { id: 'event-id', name: 'id', value: params.get('id') ?? '', inputmode: 'numeric', placeholder: 'e.g. 6150' }));
  const q = new URLSearchParams();
  if (level.value) q.set('level', level.value);
  if (id.value) q.set('id', id.value);
  /** @type {EventList} */
  const list = await api(`${BASE}/api/events?${q}`);
  fill(main, 
    h('h1', null, 'Events'),
    h('form', { class: 'inline', onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/events?${new URLSearchParams({ level: level.value, id: id.value })}`;
    } }, h('label', { for: 'level' }, 'Level'), level, h('label', { for: 'event-id' }, 'Event id'), id, h('button', { type: 'submit' }, 'Filter')),
    table(['time', 'id', 'level', 'source', 'message', 'resolution'], list.events.map((e) => [when(e.time), e.id, e.level, e.source, e.message, e.resolution]), 'events'),
  );
}

void start({
  base: BASE,
  title: 'idsync console',
  nav: [['overview', 'Overview'], ['operations', 'Operations'], ['search', 'Search'], ['events', 'Events']],
  render: async (route, main) => {
    const page = (route[0] ?? '').split('?')[0];
    const arg = route[1]?.split('?')[0];
    if (page === 'operations') return operations(main, arg);
    if (page === 'search') return search(main);
    if (page === 'objects' && arg) return object(main, arg);
    if (page === 'events') return events(main);
    return overview(main);
  },
});

// @ts-check
/**
 * The sync console's pages: Overview (with actions and the credentials form), Operations (a run and
 * its errors), Search (metaverse or connector space) with an object's lineage and trace, Preview, Events. Data from /console/api (types in src/console/api-types.ts).
 */
import { api, errorBox, fill, h, start, table, when } from './common.js';

/** @typedef {import('../src/console/api-types.js').Overview} Overview */
/** @typedef {import('../src/console/api-types.js').RunList} RunList */
/** @typedef {import('../src/console/api-types.js').SearchResult} SearchResult */
/** @typedef {import('../src/console/api-types.js').Lineage} Lineage */
/** @typedef {import('../src/console/api-types.js').EventList} EventList */
/** @typedef {import('../src/engine/runs.js').RunRecord} RunRecord */
/** @typedef {import('../src/console/api-types.js').RunDetail} RunDetail */
/** @typedef {import('../src/console/api-types.js').ObjectTraceResult} ObjectTraceResult */
/** @typedef {import('../src/console/api-types.js').CredentialSaved} CredentialSaved */
/** @typedef {import('../src/console/api-types.js').DeletionsApproved} DeletionsApproved */
/** @typedef {import('../src/console/api-types.js').PasswordsResynced} PasswordsResynced */
/** @typedef {import('../src/console/api-types.js').PreviewResult} PreviewResult */
/** @typedef {import('../src/console/api-types.js').Charts} Charts */

const BASE = '/console';

/** @param {unknown} v */
const show = (v) => (Array.isArray(v) ? v.join('; ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/**
 * @param {Record<string, unknown>} attrs
 * @param {Record<string, string | null>} [from]  the connector each attribute came from
 * @param {string} [label]
 */
function attrTable(attrs, from, label) {
  return from
    ? table(['attribute', 'value', 'from'], Object.entries(attrs).map(([k, v]) => [k, show(v), from[k] ?? '—']), label)
    : table(['attribute', 'value'], Object.entries(attrs).map(([k, v]) => [k, show(v)]), label);
}

/**
 * A button that runs an action once at a time and reports in `status`.
 * @param {string} label
 * @param {HTMLElement} status
 * @param {() => Promise<string>} action  resolves to the message to show
 * @param {Record<string, string>} [props]
 */
function actionButton(label, status, action, props = {}) {
  const b = h('button', { type: 'button', ...props, onclick: () => {
    b.setAttribute('disabled', '');
    status.replaceChildren();
    action()
      .then((msg) => (status.textContent = msg))
      .catch((e) => status.replaceChildren(errorBox(e)))
      .finally(() => b.removeAttribute('disabled'));
  } }, label);
  return b;
}

/**
 * The "update credentials" form: the secret goes to the service, is tested there before it is
 * saved, and is never shown again (the field is cleared either way).
 * @param {string[]} names
 */
function credentialForm(names) {
  const name = /** @type {HTMLSelectElement} */ (h('select', { id: 'cred-name', name: 'connector' }, names.map((n) => h('option', { value: n }, n))));
  const secret = /** @type {HTMLInputElement} */ (h('input', { id: 'cred-secret', name: 'secret', type: 'password', autocomplete: 'off', required: true }));
  const status = h('p', { role: 'status', id: 'cred-status' });
  const save = h('button', { type: 'submit' }, 'Test and save');
  return h('form', { class: 'inline', 'aria-label': 'update credentials', onsubmit: (ev) => {
    ev.preventDefault();
    const value = secret.value;
    secret.value = '';
    save.setAttribute('disabled', '');
    status.textContent = 'Testing against the directory…';
    api(`${BASE}/api/credentials/${encodeURIComponent(name.value)}`, { method: 'POST', body: { secret: value } })
      .then((r) => {
        const saved = /** @type {CredentialSaved} */ (r);
        status.textContent = `Credential for ${saved.connector} tested and saved; every component uses it from its next call.${saved.cycleStarted ? ' A sync cycle was started with it.' : ''}`;
      })
      .catch((e) => status.replaceChildren(errorBox(e)))
      .finally(() => save.removeAttribute('disabled'));
  } },
  h('label', { for: 'cred-name' }, 'Connector'), name, h('label', { for: 'cred-secret' }, 'New secret'), secret, save, status);
}

/** @param {{ runId: number, deletes: number, threshold: number }} held */
function heldPanel(held) {
  const status = h('p', { role: 'status' });
  return h('section', { class: 'held', 'aria-label': 'held deletions' },
    h('h2', null, 'Deletions held by the threshold'),
    h('p', null, `Run #${held.runId} would delete ${held.deletes} object(s) from the cloud directory, more than the deletion threshold (${held.threshold}). Nothing was deleted. `,
      h('a', { href: '#/preview' }, 'Review them in the preview'), ' before you approve.'),
    actionButton(`Approve ${held.deletes} deletions and run`, status, async () => {
      /** @type {DeletionsApproved} */
      const r = await api(`${BASE}/api/approve-deletions`, { method: 'POST', body: { runId: held.runId } });
      return `Approved ${r.deletes} deletion(s); a cycle with deletions allowed was started (recorded as event 6156).`;
    }),
    status);
}

const SVG = 'http://www.w3.org/2000/svg';

/**
 * An SVG element with attributes (no style attribute: the CSP allows none; colours come from CSS classes).
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {(Element | string)[]} children
 */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * A bar chart drawn in the page itself (nothing fetched), with a table of the same figures for
 * screen readers and for copying.
 * @param {string} title
 * @param {string} unit
 * @param {{ label: string, value: number | null, bad?: boolean }[]} bars
 */
function barChart(title, unit, bars) {
  const w = 560;
  const hgt = 140;
  const max = Math.max(1, ...bars.map((b) => b.value ?? 0));
  const bw = bars.length ? (w - 40) / bars.length : 0;
  const fmt = (/** @type {number | null} */ v) => (v === null ? '—' : Number.isInteger(v) ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const chart = svg('svg', { viewBox: `0 0 ${w} ${hgt + 24}`, role: 'img', 'aria-label': `${title} (${unit})`, class: 'chart' },
    svg('line', { x1: 36, y1: hgt, x2: w, y2: hgt, class: 'axis' }),
    svg('text', { x: 0, y: 12, class: 'tick' }, fmt(max)),
    svg('text', { x: 0, y: hgt, class: 'tick' }, '0'),
    ...bars.map((b, i) => {
      const bh = ((b.value ?? 0) / max) * (hgt - 10);
      return svg('rect', { x: 40 + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2), height: bh, class: b.bad ? 'bar bad' : 'bar' }, svg('title', {}, `${b.label}: ${fmt(b.value)} ${unit}`));
    }),
    ...(bars.length <= 10 ? bars.map((b, i) => svg('text', { x: 40 + i * bw + bw / 2, y: hgt + 16, class: 'tick', 'text-anchor': 'middle' }, b.label.slice(5))) : []));
  return h('figure', { class: 'chart' }, h('figcaption', null, `${title} (${unit})`), bars.length ? chart : h('p', { class: 'muted' }, 'nothing in the last 7 days'),
    h('details', null, h('summary', null, 'figures'), table(['', unit], bars.map((b) => [b.label, fmt(b.value)]), title)));
}

/** @param {HTMLElement} el */
async function charts(el) {
  /** @type {Charts} */
  const c = await api(`${BASE}/api/charts`);
  fill(el,
    h('h2', null, `The last ${c.days} days`),
    h('div', { class: 'charts' },
      barChart('Cycle durations', 'seconds', c.cycles.map((r) => ({ label: `#${r.id} ${r.profile}`, value: r.seconds, bad: r.status === 'failed' }))),
      barChart('Exports per cycle', 'objects', c.cycles.map((r) => ({ label: `#${r.id}`, value: r.exported, bad: r.status === 'failed' }))),
      barChart('Password changes delivered', 'per day', c.passwordsDelivered.map((d) => ({ label: d.day, value: d.delivered }))),
      barChart('Change to sign-in, median', 'seconds', c.changeToSignIn.map((d) => ({ label: d.day, value: d.medianSeconds })))));
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
  const pwStatus = h('p', { role: 'status' });
  const chartBox = h('section', { id: 'charts', 'aria-label': 'charts' });
  void charts(chartBox).catch((e) => fill(chartBox, errorBox(e)));
  const fullButton = actionButton('Run a full sync', status, async () => {
    await api(`${BASE}/api/runs`, { method: 'POST', body: { profile: 'full' } });
    return 'Full sync started: see Operations.';
  });
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
      h('p', { class: 'actions' }, runButton, fullButton, h('a', { href: '#/preview' }, 'Preview the next cycle')), status),
    o.heldDeletions ? heldPanel(o.heldDeletions) : null,
    chartBox,
    h('section', null,
      h('h2', null, 'Password hash sync'),
      table(['outbox depth', 'oldest queued', 'heartbeat', 'last batch'], [[hl.passwords.outboxDepth, when(hl.passwords.oldestQueuedAt ?? ''), when(hl.passwords.heartbeatAt ?? ''), when(hl.passwords.lastBatchAt ?? '')]], 'password hash sync'),
      actionButton('Resync every password', pwStatus, async () => {
        /** @type {PasswordsResynced} */
        const r = await api(`${BASE}/api/passwords/resync`, { method: 'POST', body: { all: true } });
        return `${r.queued} user(s) queued for a full password sync.`;
      }), pwStatus),
    h('section', null,
      h('h2', null, 'Connectors and credentials'),
      table(['name', 'set', 'changed', 'last test', 'last worked', 'result'], hl.credentials.map((c) => [c.name, 'yes', when(c.changedAt ?? ''), when(c.lastTestAt ?? ''), when(c.lastGoodUseAt ?? ''), c.lastTestOk === null ? '—' : c.lastTestOk ? 'worked' : `refused (${c.lastErrorCode ?? ''})`]), 'credentials'),
      h('h3', null, 'Update credentials'),
      credentialForm(o.credentialNames)),
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

/**
 * What a page of results covered: a walk says how many objects it has searched; the index, how
 * many objects changed since it was brought up to date it checked one by one.
 * @param {SearchResult} r
 */
function searchProgress(r) {
  const n = (/** @type {number} */ x) => x.toLocaleString('en');
  const found = r.objects.length === 0 ? (r.partial ? 'No match yet. ' : 'No match. ') : '';
  if (r.method === 'scan') return `${found}Searched ${n(r.scanned)} of ${n(r.total)} objects${r.partial ? ' (this page\'s time ran out: search further for more)' : ''}.`;
  return `${found}From the attribute index${r.total ? `, and ${n(r.scanned)} of ${n(r.total)} objects changed since it was last brought up to date checked one by one` : ''}${r.partial ? ' (this page\'s time ran out: search further for more)' : ''}.`;
}

/** @param {HTMLElement} main */
async function search(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const space = /** @type {HTMLSelectElement} */ (h('select', { id: 'space', name: 'space' }, h('option', { value: 'mv' }, 'metaverse'), h('option', { value: 'cs' }, 'connector space')));
  space.value = params.get('space') ?? 'mv';
  const attr = /** @type {HTMLInputElement} */ (h('input', { id: 'attr', name: 'attr', value: params.get('attr') ?? 'mail', required: true }));
  const op = /** @type {HTMLSelectElement} */ (h('select', { id: 'op', name: 'op' }, h('option', { value: 'eq' }, 'equals'), h('option', { value: 'sw' }, 'starts with'), h('option', { value: 'pr' }, 'present')));
  op.value = params.get('op') ?? 'eq';
  const value = /** @type {HTMLInputElement} */ (h('input', { id: 'value', name: 'value', value: params.get('value') ?? '' }));
  const results = h('div', { id: 'results' });
  /** @param {string} after */
  const run = async (after) => {
    const q = new URLSearchParams({ space: space.value, attr: attr.value, op: op.value, value: value.value, after });
    try {
      /** @type {SearchResult} */
      const r = await api(`${BASE}/api/search?${q}`);
      const link = (/** @type {SearchResult['objects'][number]} */ o) => (o.id !== null ? h('a', { href: `#/objects/${o.id}` }, `#${o.id}`) : 'not joined');
      fill(results,
        r.space === 'mv'
          ? table(['id', 'type', 'name', 'source anchor'], r.objects.map((o) => [link(o), o.objectType, o.display, o.anchor]), 'search results')
          : table(['metaverse', 'connector', 'type', 'name', 'DN'], r.objects.map((o) => [link(o), o.connector, o.objectType, o.display, o.dn]), 'search results'),
        h('p', { id: 'search-progress', role: 'status' }, searchProgress(r)),
        r.next !== null ? h('button', { type: 'button', onclick: () => void run(/** @type {string} */ (r.next)) }, r.partial ? 'Search further' : 'Next page') : null,
      );
    } catch (e) {
      fill(results, errorBox(e));
    }
  };
  fill(main,
    h('h1', null, 'Search'),
    h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); void run(''); } },
      h('label', { for: 'space' }, 'In'), space,
      h('label', { for: 'attr' }, 'Attribute'), attr, h('label', { for: 'op' }, 'Operator'), op, h('label', { for: 'value' }, 'Value'), value,
      h('button', { type: 'submit' }, 'Search')),
    results,
  );
  if (value.value || op.value === 'pr') await run('');
}

/** @param {ObjectTraceResult} t */
function traceView(t) {
  /** @param {{ attribute: string, before: unknown, after: unknown }[]} d */
  const changes = (d) => (d.length ? h('ul', null, d.map((c) => h('li', null, `${c.attribute}: ${c.before === null || c.before === undefined ? '(none)' : show(c.before)} → ${c.after === null || c.after === undefined ? '(none)' : show(c.after)}`))) : null);
  return h('section', { id: 'trace', 'aria-label': 'trace' },
    h('h2', null, `Trace of ${t.dn} (run #${t.runId})`),
    t.why ? h('p', { class: 'warn' }, `Why: ${t.why.message}`) : null,
    h('dl', null,
      h('dt', null, 'import'), h('dd', null, `${t.import.result}${t.import.connector ? ` from ${t.import.connector}` : ''}`, changes(t.import.changes)),
      h('dt', null, 'sync'), h('dd', null, `${t.sync.result}${t.sync.metaverseId ? ` (metaverse object ${t.sync.metaverseId})` : ''}`, changes(t.sync.changes)),
      h('dt', null, 'export'), h('dd', null, `${t.export.result}${t.export.cloudId ? ` (cloud id ${t.export.cloudId})` : ''}${t.export.error ? `: ${t.export.error}` : ''}`, changes(t.export.changes))));
}

/** @param {HTMLElement} main @param {string} id */
async function object(main, id) {
  /** @type {Lineage} */
  const l = await api(`${BASE}/api/objects/${encodeURIComponent(id)}`);
  const mv = l.metaverse;
  const traced = h('div', { id: 'trace-result' });
  const status = h('p', { role: 'status' });
  const lastPw = l.passwords[0];
  fill(main,
    h('h1', null, `Object #${mv.id} (${mv.objectType})`),
    h('ol', { class: 'lineage', 'aria-label': 'lineage' },
      l.connectorSpace.map((c) => h('li', null, h('strong', null, 'Source entry '), `${c.connector}: ${c.dn}`)),
      l.connectorSpace.map((c) => h('li', null, h('strong', null, 'Connector space '), `${c.connector}: ${c.dn}`, ` — pending: ${c.pending ?? 'none'}`)),
      h('li', null, h('strong', null, 'Metaverse '), `#${mv.id}, anchor ${mv.sourceAnchor} — ${mv.pendingExport ? 'export pending' : 'no pending export'}${mv.deleted ? ' (deleted)' : ''}`),
      h('li', { id: 'cloud-resource' }, h('strong', null, 'Cloud resource '), l.cloud ? `${l.cloud.resourceId ?? 'not created yet'} — last export ${when(l.cloud.updatedAt)}${l.cloud.lastError ? `, last error: ${l.cloud.lastError}` : ''}` : 'not exported yet'),
      mv.objectType === 'user'
        ? h('li', { id: 'password-status' }, h('strong', null, 'Password sync '), lastPw ? `${lastPw.status} at ${when(lastPw.at)}${lastPw.reason ? ` (${lastPw.reason})` : ''}` : 'no password change in the last 7 days')
        : null),
    h('p', { class: 'actions' },
      l.connectorSpace.length
        ? actionButton('Trace this object', status, async () => {
            /** @type {ObjectTraceResult} */
            const t = await api(`${BASE}/api/objects/${mv.id}/trace`, { method: 'POST', body: {} });
            traced.replaceChildren(traceView(t));
            return 'Traced: this is what `idsync sync --object` shows.';
          })
        : null,
      mv.objectType === 'user' && l.connectorSpace[0]
        ? actionButton('Resync this password', status, async () => {
            /** @type {PasswordsResynced} */
            const r = await api(`${BASE}/api/passwords/resync`, { method: 'POST', body: { user: l.connectorSpace[0]?.anchor } });
            return `${r.queued} user(s) queued for a password resync.`;
          })
        : null),
    status,
    traced,
    h('h2', null, 'Metaverse attributes'),
    attrTable(mv.attrs, mv.contributedBy, 'metaverse attributes'),
    l.passwords.length ? [h('h2', null, 'Password sync history'), table(['at', 'status', 'source', 'reason'], l.passwords.map((p) => [when(p.at), p.status, p.source ?? '', p.reason ?? '']), 'password sync history')] : null,
    l.connectorSpace.map((c) => [h('h2', null, `Connector space: ${c.connector}`), attrTable(c.attrs)]),
  );
}

/** @param {HTMLElement} main */
async function preview(main) {
  fill(main, h('h1', null, 'Preview of the next cycle'), h('p', { class: 'muted', role: 'status' }, 'Importing and syncing; nothing is written to the cloud…'));
  /** @type {PreviewResult} */
  const p = await api(`${BASE}/api/preview`, { method: 'POST', body: {} });
  /** @param {PreviewResult['plan'][number]} x */
  const sign = (x) => (x.op === 'add' ? '+' : x.op === 'delete' || x.op === 'disable' ? '−' : '~');
  fill(main,
    h('h1', null, 'Preview of the next cycle'),
    h('p', null, `Run #${p.runId} (${p.status}): ${p.plan.length} pending export(s); nothing was written to the cloud directory.`),
    table(['', 'operation', 'type', 'object', 'cloud id', 'changes'],
      p.plan.map((x) => [sign(x), x.op, x.objectType, x.object, x.cloudId ?? '', x.op === 'update' || x.op === 'disable' ? h('ul', null, x.changes.map((c) => h('li', null, `${c.attribute}: ${c.before === null || c.before === undefined ? '(none)' : show(c.before)} → ${c.after === null || c.after === undefined ? '(none)' : show(c.after)}`))) : '']),
      'preview'),
  );
}

/** The live events stream of the events page, closed when another page opens. @type {EventSource | null} */
let live = null;

const SOURCES = ['Directory Synchronization', 'idsync Sync Engine', 'idsync Service', 'idsync Credentials', 'idsync Password Sync'];
/** @type {Record<string, number>} */
const RANGES = { 'last hour': 3600e3, 'last 24 hours': 86400e3, 'last 7 days': 7 * 86400e3 };

/** @param {import('../src/events/log.js').EventRecord} e */
const eventRow = (e) => [when(e.time), e.id, e.level, e.source, e.message, e.resolution];

/** @param {HTMLElement} main */
async function events(main) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const level = /** @type {HTMLSelectElement} */ (h('select', { id: 'level', name: 'level' }, ['', 'Error', 'Warning', 'Information'].map((l) => h('option', { value: l }, l || 'any level'))));
  level.value = params.get('level') ?? '';
  const id = /** @type {HTMLInputElement} */ (h('input', { id: 'event-id', name: 'id', value: params.get('id') ?? '', inputmode: 'numeric', placeholder: 'e.g. 115,655' }));
  const source = /** @type {HTMLSelectElement} */ (h('select', { id: 'source', name: 'source' }, h('option', { value: '' }, 'any source'), SOURCES.map((x) => h('option', { value: x }, x))));
  source.value = params.get('source') ?? '';
  const range = /** @type {HTMLSelectElement} */ (h('select', { id: 'range', name: 'range' }, h('option', { value: '' }, 'any time'), Object.keys(RANGES).map((x) => h('option', { value: x }, x))));
  range.value = params.get('range') ?? '';
  const q = new URLSearchParams();
  if (level.value) q.set('level', level.value);
  if (id.value) q.set('id', id.value);
  if (source.value) q.set('source', source.value);
  const span = RANGES[range.value];
  if (span) q.set('since', new Date(Date.now() - span).toISOString());
  /** @type {EventList} */
  const list = await api(`${BASE}/api/events?${q}`);
  const table_ = table(['time', 'id', 'level', 'source', 'message', 'resolution'], list.events.map(eventRow), 'events');
  const liveState = h('span', { class: 'muted', id: 'live-state', role: 'status' }, 'Live: connecting…');
  fill(main,
    h('h1', null, 'Events'),
    h('form', { class: 'inline', onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/events?${new URLSearchParams({ level: level.value, id: id.value, source: source.value, range: range.value })}`;
    } },
    h('label', { for: 'level' }, 'Level'), level, h('label', { for: 'event-id' }, 'Event id'), id, h('label', { for: 'source' }, 'Source'), source,
    h('label', { for: 'range' }, 'Time'), range, h('button', { type: 'submit' }, 'Filter'), liveState),
    table_,
  );
  // New events arrive at the top as they are written (Server-Sent Events, same filters).
  q.delete('since');
  q.set('after', String(list.lastSeq));
  live = new EventSource(`${BASE}/api/events/stream?${q}`);
  live.onopen = () => (liveState.textContent = 'Live: new events appear at the top');
  live.onerror = () => (liveState.textContent = 'Live: reconnecting…');
  live.onmessage = (m) => {
    const e = /** @type {import('../src/events/log.js').EventRecord} */ (JSON.parse(m.data));
    const body = table_.querySelector('tbody');
    if (!body) return;
    body.querySelector('td.muted')?.parentElement?.remove();
    body.prepend(h('tr', { class: 'new' }, eventRow(e).map((c) => h('td', null, c))));
  };
}

void start({
  base: BASE,
  title: 'idsync console',
  nav: [['overview', 'Overview'], ['operations', 'Operations'], ['search', 'Search'], ['events', 'Events']],
  render: async (route, main) => {
    live?.close();
    live = null;
    const page = (route[0] ?? '').split('?')[0];
    const arg = route[1]?.split('?')[0];
    if (page === 'operations') return operations(main, arg);
    if (page === 'search') return search(main);
    if (page === 'objects' && arg) return object(main, arg);
    if (page === 'events') return events(main);
    if (page === 'preview') return preview(main);
    return overview(main);
  },
});

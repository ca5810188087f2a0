// Tasks: a filtered list in cursor pages, a form to submit one, and one task's page (its history as a timeline, its
// log tail followed while it runs, stop).
/* global location, sessionStorage, setTimeout, clearTimeout, AbortController */
import { useEffect, useRef, useState } from 'preact/hooks';
import { bus, fmtTime, parseEnv, splitCommand } from './lib.js';
import { Badge } from './overview.js';
import { html } from './html.js';

const states = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'];
const finalStates = new Set(['succeeded', 'failed', 'stopped']);
const pageSize = 25;

function query(params) {
  const q = Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined);
  return q.length === 0 ? '' : `?${q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`;
}

/** One page of tasks matching the filter, from `cursor` (the API filters by state, worker and name). */
async function loadPage(api, f, cursor) {
  return api.request('GET', `/v1/tasks${query({ state: f.state, workerId: f.worker, name: f.name, limit: pageSize, cursor })}`);
}

function SubmitForm({ api }) {
  const [f, setF] = useState({ image: '', command: '', env: '', restartPolicy: 'never', name: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const spec = { image: f.image.trim(), restartPolicy: f.restartPolicy };
      const command = splitCommand(f.command);
      if (command.length > 0) spec.command = command;
      const env = parseEnv(f.env);
      if (Object.keys(env).length > 0) spec.env = env;
      if (f.name.trim() !== '') spec.name = f.name.trim();
      const created = await api.request('POST', '/v1/tasks', spec, { headers: { 'idempotency-key': api.idempotencyKey() } });
      location.hash = `#/tasks/${encodeURIComponent(created.id)}`;
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="submit" onSubmit=${submit} aria-labelledby="submit-h">
    <h2 id="submit-h">Submit a task</h2>
    <div class="grid">
      <label for="s-image">Image</label><input id="s-image" required value=${f.image} onInput=${set('image')} placeholder="minkube-busybox:latest" />
      <label for="s-command">Command</label><input id="s-command" value=${f.command} onInput=${set('command')} placeholder='sh -c "echo hi"' aria-describedby="s-command-help" />
      <span id="s-command-help" class="help">Arguments split at spaces; quote one that holds spaces.</span>
      <label for="s-env">Environment</label><textarea id="s-env" rows="2" value=${f.env} onInput=${set('env')} placeholder="NAME=value, one a line"></textarea>
      <label for="s-restart">Restart policy</label>
      <select id="s-restart" value=${f.restartPolicy} onChange=${set('restartPolicy')}>
        <option value="never">never</option><option value="on-failure">on-failure</option><option value="always">always</option>
      </select>
      <label for="s-name">Name (optional)</label><input id="s-name" value=${f.name} onInput=${set('name')} />
    </div>
    <button type="submit" disabled=${busy}>${busy ? 'Submitting…' : 'Submit'}</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

export function TasksPage({ api, snap }) {
  const [filter, setFilter] = useState(() => {
    const state = sessionStorage.getItem('minkube.filter.state') ?? '';
    sessionStorage.removeItem('minkube.filter.state');
    return { state, worker: '', name: '' };
  });
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [reloads, setReloads] = useState(0);
  const cursor = cursors.at(-1);
  const filterNow = useRef(filter);
  filterNow.current = filter;

  useEffect(() => {
    let gone = false;
    const t = setTimeout(async () => {
      try {
        const p = await loadPage(api, filter, cursor);
        if (!gone) {
          setPage(p);
          setError(null);
        }
      } catch (err) {
        if (!gone) setError(err.message);
      }
    }, filter.name === '' ? 0 : 250);
    return () => {
      gone = true;
      clearTimeout(t);
    };
  }, [filter, cursor, reloads]);

  // Live: a change to a listed task updates its row; anything else (a new task, a dropped batch) reloads the page, at most twice a second.
  const pending = useRef(null);
  useEffect(() => {
    const onTasks = (e) => {
      const { items, dropped } = e.detail;
      let reload = dropped > 0;
      setPage((p) => {
        if (p === null) return p;
        const byId = new Map(items.map((c) => [c.id, c]));
        const rows = p.items.map((t) => (byId.has(t.id) ? { ...t, ...byId.get(t.id), spec: t.spec } : t));
        if (items.some((c) => !p.items.some((t) => t.id === c.id))) reload = true;
        // A listed task that left the state the list is filtered by (a running one ended) leaves the list too.
        const state = filterNow.current.state;
        if (state !== '' && items.some((c) => c.state !== state && p.items.some((t) => t.id === c.id))) reload = true;
        return { ...p, items: rows };
      });
      if (reload && pending.current === null) pending.current = setTimeout(() => { pending.current = null; setReloads((n) => n + 1); }, 500);
    };
    bus.addEventListener('tasks', onTasks);
    return () => {
      bus.removeEventListener('tasks', onTasks);
      clearTimeout(pending.current);
      pending.current = null;
    };
  }, []);

  const change = (k) => (e) => {
    setFilter({ ...filter, [k]: e.target.value });
    setCursors([null]);
  };
  const workers = snap?.workers ?? [];
  return html`
    <h1>Tasks</h1>
    <form class="filters" role="search" aria-label="Filter tasks" onSubmit=${(e) => e.preventDefault()}>
      <label for="f-state">State</label>
      <select id="f-state" value=${filter.state} onChange=${change('state')}>
        <option value="">any</option>${states.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
      <label for="f-worker">Worker</label>
      <select id="f-worker" value=${filter.worker} onChange=${change('worker')}>
        <option value="">any</option>${workers.map((w) => html`<option value=${w.id}>${w.id}</option>`)}
      </select>
      <label for="f-name">Name contains</label>
      <input id="f-name" type="search" value=${filter.name} onInput=${change('name')} />
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <div class="table-wrap"><table aria-label="Tasks">
      <thead><tr><th scope="col">ID</th><th scope="col">Name</th><th scope="col">State</th><th scope="col">Worker</th><th scope="col">Attempt</th><th scope="col">Updated</th></tr></thead>
      <tbody>${page === null
        ? html`<tr><td colspan="6">Loading…</td></tr>`
        : page.items.length === 0
          ? html`<tr><td colspan="6" class="muted">No task matches.</td></tr>`
          : page.items.map((t) => html`<tr data-testid=${`task-row-${t.id}`}>
              <th scope="row"><a href=${`#/tasks/${encodeURIComponent(t.id)}`}>${t.id}</a></th>
              <td>${t.spec.name ?? ''}</td><td><${Badge} value=${t.state} /></td><td>${t.workerId ?? '–'}</td><td>${t.attempt}</td><td>${fmtTime(t.updatedAt)}</td>
            </tr>`)}
      </tbody>
    </table></div>
    <nav class="pager" aria-label="Pages of tasks">
      <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
      <span>page ${cursors.length}</span>
      <button type="button" disabled=${page?.nextCursor == null} onClick=${() => setCursors([...cursors, page.nextCursor])}>Next page</button>
    </nav>
    <${SubmitForm} api=${api} />`;
}

function Timeline({ history }) {
  return html`<ol class="timeline" aria-label="History">
    ${history.map((t) => html`<li>
      <time>${fmtTime(t.atMs)}</time> <${Badge} value=${t.state} /> attempt ${t.attempt}${t.workerId ? ` on ${t.workerId}` : ''}${t.reason ? html` <span class="muted">— ${t.reason}</span>` : ''}
    </li>`)}
  </ol>`;
}

/** The lines the task page shows: the last ones. */
const logLinesMax = 200;

/** The last n lines of text (a trailing newline does not count as a line). */
function lastLines(text, n) {
  let pos = text.endsWith('\n') ? text.length - 1 : text.length;
  for (let i = 0; i < n; i++) {
    pos = text.lastIndexOf('\n', pos - 1);
    if (pos === -1) return text;
  }
  return text.slice(pos + 1);
}

export function TaskPage({ api, id }) {
  const [task, setTask] = useState(null);
  const [logs, setLogs] = useState('');
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const logBox = useRef(null);
  // stream: the AbortController of the follow under way (null: none, and the log tail is polled instead).
  const state = useRef({ running: false, lastLogsMs: 0, fetching: false, stream: null });
  // The task shown now: an answer for the task shown before (a load still under way when another was picked) is dropped.
  const shown = useRef(id);
  shown.current = id;

  const loadTask = async () => {
    try {
      const t = await api.request('GET', `/v1/tasks/${encodeURIComponent(id)}`);
      if (shown.current !== id) return null;
      setTask(t);
      setError(null);
      state.current.running = !finalStates.has(t.state);
      return t;
    } catch (err) {
      if (shown.current === id) setError(err.message);
      return null;
    }
  };
  const loadLogs = async () => {
    if (state.current.fetching) return;
    state.current.fetching = true;
    state.current.lastLogsMs = Date.now();
    try {
      const text = await api.request('GET', `/v1/tasks/${encodeURIComponent(id)}/logs?tail=${logLinesMax}`, undefined, { text: true });
      if (shown.current === id) setLogs(text);
    } catch (err) {
      if (err.code !== 'TASK_NOT_FOUND' && shown.current === id) setLogs((l) => (l === '' ? `(${err.message})` : l));
    } finally {
      state.current.fetching = false;
    }
  };

  // While the task runs, its output is read as it is written (GET .../logs?follow=true). Once the stream has ended
  // (the attempt is over, or it failed), each snapshot (about 1/s) reloads the tail until the record says how the task
  // went on: a change of this task (the 'tasks' event) follows its next attempt, or loads the last tail once it ended.
  const follow = () => {
    if (state.current.stream !== null || !state.current.running) return;
    const ctrl = new AbortController();
    state.current.stream = ctrl;
    let text = null;
    const onText = (piece) => {
      text = lastLines((text ?? '') + piece, logLinesMax);
      setLogs(text);
    };
    void api
      .stream(`/v1/tasks/${encodeURIComponent(id)}/logs?follow=true&tail=${logLinesMax}`, onText, ctrl.signal)
      .catch(() => undefined)
      .finally(() => {
        if (state.current.stream === ctrl) state.current.stream = null;
      });
  };
  const refresh = () =>
    loadTask().then((t) => {
      if (t === null) return;
      if (state.current.running) follow();
      else if (t.workerId !== null || t.history.some((h) => h.workerId !== null)) void loadLogs();
    });

  useEffect(() => {
    setTask(null);
    setError(null);
    setNotice(null);
    setLogs('');
    void refresh();
    // A change of this task reloads it (and, once it has ended, its logs).
    const onTasks = (e) => {
      if (!e.detail.items.some((c) => c.id === id) && e.detail.dropped === 0) return;
      void refresh();
    };
    const onSnapshot = () => {
      if (state.current.running && state.current.stream === null && Date.now() - state.current.lastLogsMs >= 900) void loadLogs();
    };
    bus.addEventListener('tasks', onTasks);
    bus.addEventListener('snapshot', onSnapshot);
    return () => {
      bus.removeEventListener('tasks', onTasks);
      bus.removeEventListener('snapshot', onSnapshot);
      state.current.stream?.abort();
      state.current.stream = null;
    };
  }, [id]);

  useEffect(() => {
    const el = logBox.current;
    if (el !== null) el.scrollTop = el.scrollHeight;
  }, [logs]);

  const stop = async () => {
    setNotice(null);
    try {
      setTask(await api.request('DELETE', `/v1/tasks/${encodeURIComponent(id)}`));
      setNotice('Stop requested.');
    } catch (err) {
      setNotice(err.message);
    }
  };

  // Until the picked task's own record arrives, nothing of the task shown before (the first render after a pick still
  // holds its state).
  const own = task !== null && task.id === id;
  if (error !== null && !own) return html`<h1>Task ${id}</h1><p class="error" role="alert">${error}</p><p><a href="#/tasks">All tasks</a></p>`;
  if (!own) return html`<h1>Task ${id}</h1><p>Loading…</p>`;
  const running = !finalStates.has(task.state);
  return html`
    <p><a href="#/tasks">← All tasks</a></p>
    <h1>Task <code>${task.id}</code></h1>
    <div class="actions">
      <span>State: <span data-testid="task-state"><${Badge} value=${task.state} /></span></span>
      <button type="button" onClick=${stop} disabled=${!running || task.desiredState === 'stop'}>Stop task</button>
      <span role="status" aria-live="polite">${notice}</span>
    </div>
    <dl class="details">
      <dt>Name</dt><dd>${task.spec.name ?? '–'}</dd>
      <dt>Image</dt><dd><code>${task.spec.image}</code></dd>
      <dt>Command</dt><dd><code>${(task.spec.command ?? []).map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ') || '–'}</code></dd>
      <dt>Restart policy</dt><dd>${task.spec.restartPolicy ?? 'never'}</dd>
      <dt>Desired</dt><dd>${task.desiredState}</dd>
      <dt>Worker</dt><dd>${task.workerId ?? '–'}</dd>
      <dt>Attempt</dt><dd>${task.attempt}</dd>
      <dt>Exit code</dt><dd>${task.exitCode ?? '–'}</dd>
      ${task.error && html`<dt>Error</dt><dd>${task.error.class}: ${task.error.message}</dd>`}
    </dl>
    <section aria-labelledby="hist-h"><h2 id="hist-h">History</h2><${Timeline} history=${task.history} /></section>
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">Log tail ${running ? html`<span class="muted">(following)</span>` : ''}</h2>
      <pre class="logs" ref=${logBox} tabindex="0" aria-label="Log tail" data-testid="task-logs">${logs === '' ? '(no output yet)' : logs}</pre>
    </section>`;
}

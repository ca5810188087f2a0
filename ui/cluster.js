// Workers (heartbeat age, CPU, memory, running tasks) and members (voter or learner; transfer leadership; remove a
// member after a confirmation), both from the live feed's snapshots; services (replicas healthy, running and desired;
// the rollout and its progress), reloaded when task changes arrive.
/* global setTimeout, clearTimeout */
import { useEffect, useRef, useState } from 'preact/hooks';
import { bus, fmtBytes } from './lib.js';
import { Badge, yesNo } from './overview.js';
import { html } from './html.js';

function heartbeatAge(snap, w) {
  if (w.lastHeartbeatAt === null) return 'never';
  const s = Math.max(0, (snap.atMs - Date.parse(w.lastHeartbeatAt)) / 1000);
  return `${s.toFixed(1)} s`;
}

export function WorkersPage({ snap }) {
  if (snap === null) return html`<h1>Workers</h1><p>Waiting for the cluster…</p>`;
  return html`
    <h1>Workers</h1>
    ${snap.workers.length === 0 && html`<p class="muted">No worker has registered.</p>`}
    <div class="table-wrap"><table aria-label="Workers">
      <thead><tr><th scope="col">ID</th><th scope="col">State</th><th scope="col">Availability</th><th scope="col">Heartbeat age</th><th scope="col">CPU</th><th scope="col">Memory used / total</th><th scope="col">Running tasks</th><th scope="col">Runtime</th><th scope="col">API</th></tr></thead>
      <tbody>${snap.workers.map((w) => {
        const st = w.stats;
        const cpu = st?.cpuUtilization == null ? '–' : `${(st.cpuUtilization * 100).toFixed(0)} %`;
        const mem = st == null ? '–' : `${fmtBytes(st.memoryTotalBytes - st.memoryAvailableBytes)} / ${fmtBytes(st.memoryTotalBytes)}`;
        return html`<tr data-testid=${`worker-row-${w.id}`}>
          <th scope="row">${w.id}</th><td><${Badge} value=${w.state} /></td><td>${w.availability ?? 'active'}</td><td>${heartbeatAge(snap, w)}</td><td>${cpu}</td><td>${mem}</td>
          <td>${w.taskCount}</td><td>${w.runtime}</td><td><code>${w.apiAddress}</code></td>
        </tr>`;
      })}</tbody>
    </table></div>`;
}

function ConfirmRemove({ member, onCancel, onConfirm }) {
  const dialog = useRef(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  return html`<dialog ref=${dialog} aria-labelledby="rm-h" aria-describedby="rm-d" onCancel=${(e) => { e.preventDefault(); onCancel(); }}>
    <h2 id="rm-h">Remove member ${member}?</h2>
    <p id="rm-d">It leaves the Raft configuration once the change commits and takes no further part; to bring it back, empty its data directory and start it with <code>--join</code>.</p>
    <div class="actions">
      <button type="button" autofocus onClick=${onCancel}>Cancel</button>
      <button type="button" class="danger" onClick=${onConfirm}>Remove ${member}</button>
    </div>
  </dialog>`;
}

export function MembersPage({ api, snap }) {
  const [notice, setNotice] = useState(null);
  const [busy, setBusy] = useState(false);
  const [removing, setRemoving] = useState(null);
  if (snap === null) return html`<h1>Members</h1><p>Waiting for the cluster…</p>`;
  const act = async (what, fn) => {
    setBusy(true);
    setNotice(`${what}…`);
    try {
      setNotice(await fn());
    } catch (err) {
      setNotice(`${what} failed: ${err.message}`);
    } finally {
      setBusy(false);
    }
  };
  const transfer = (id) =>
    act(`Handing leadership to ${id}`, async () => {
      const r = await api.request('POST', '/v1/cluster/leader', { id }, { retry: false, timeoutMs: 15_000 });
      return `Leader is now ${r.leaderId} (term ${r.term}).`;
    });
  const remove = (id) => {
    setRemoving(null);
    return act(`Removing ${id}`, async () => {
      const r = await api.request('DELETE', `/v1/cluster/members/${encodeURIComponent(id)}`, undefined, { retry: false, timeoutMs: 15_000 });
      return `Removed ${id}; members now ${r.members.map((m) => m.id).join(', ')}.`;
    });
  };
  return html`
    <h1>Members</h1>
    <p role="status" aria-live="polite" data-testid="members-notice">${notice}</p>
    <div class="table-wrap"><table aria-label="Members">
      <thead><tr><th scope="col">ID</th><th scope="col">Kind</th><th scope="col">Role</th><th scope="col">Reachable</th><th scope="col">Lag</th><th scope="col">API</th><th scope="col">Actions</th></tr></thead>
      <tbody>${snap.members.map((m) => html`<tr data-testid=${`members-row-${m.id}`}>
        <th scope="row">${m.id}</th><td>${m.voter ? 'voter' : 'learner'}</td>
        <td>${m.role === null ? html`<span class="muted">no answer</span>` : html`<${Badge} value=${m.role} />`}</td>
        <td>${yesNo(m.reachable && m.answered)}</td><td>${m.lag ?? '–'}</td><td><code>${m.apiAddress}</code></td>
        <td class="actions">
          <button type="button" disabled=${busy || !m.voter || m.id === snap.leaderId} onClick=${() => transfer(m.id)} aria-label=${`Make ${m.id} the leader`}>Make leader</button>
          <button type="button" class="danger" disabled=${busy} onClick=${() => setRemoving(m.id)} aria-label=${`Remove ${m.id}`}>Remove…</button>
        </td>
      </tr>`)}</tbody>
    </table></div>
    ${removing !== null && html`<${ConfirmRemove} member=${removing} onCancel=${() => setRemoving(null)} onConfirm=${() => remove(removing)} />`}`;
}

/** Replicas of the current version (the rollout's progress), of the desired count. */
function progressOf(s) {
  const current = s.tasks.filter((t) => t.version === s.version && t.desiredState !== 'stop').length;
  return `${Math.min(current, s.replicas.desired)} / ${s.replicas.desired} on v${s.version}`;
}

export function ServicesPage({ api }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let gone = false;
    let timer = null;
    const load = async () => {
      try {
        const page = await api.request('GET', '/v1/services?limit=100');
        if (!gone) {
          setList(page);
          setError(null);
        }
      } catch (err) {
        if (!gone) setError(err.code === 'NOT_FOUND' ? 'This manager serves no services API.' : err.message);
      }
    };
    void load();
    // Replicas are tasks: a batch of task changes reloads the list, at most twice a second.
    const onTasks = () => {
      if (timer === null) timer = setTimeout(() => { timer = null; void load(); }, 500);
    };
    bus.addEventListener('tasks', onTasks);
    return () => {
      gone = true;
      clearTimeout(timer);
      bus.removeEventListener('tasks', onTasks);
    };
  }, []);
  return html`
    <h1>Services</h1>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${list !== null && list.items.length === 0 && html`<p class="muted">No service yet (<code>POST /v1/services</code>).</p>`}
    ${list !== null && list.items.length > 0 && html`<div class="table-wrap"><table aria-label="Services">
      <thead><tr><th scope="col">Name</th><th scope="col">Healthy</th><th scope="col">Running</th><th scope="col">Desired</th><th scope="col">Rollout</th><th scope="col">Progress</th><th scope="col">Image</th></tr></thead>
      <tbody>${list.items.map((s) => html`<tr data-testid=${`service-row-${s.name}`}>
        <th scope="row">${s.name}</th><td>${s.replicas.healthy}</td><td data-testid=${`service-running-${s.name}`}>${s.replicas.running}</td><td>${s.replicas.desired}</td>
        <td><${Badge} value=${s.rollout.state} />${s.rollout.message ? html` <span class="muted">${s.rollout.message}</span>` : ''}</td>
        <td>${progressOf(s)}</td><td><code>${s.spec.image}</code></td>
      </tr>`)}</tbody>
    </table></div>`}`;
}

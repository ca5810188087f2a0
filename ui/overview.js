// Overview: leader and term, every member with its role, indexes and lag, every worker's state, tasks by state, and
// writes/s and placements/s over the last minutes (uPlot).
/* global ResizeObserver */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

const states = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'stopped', 'lost'];

export function Badge({ value }) {
  return html`<span class=${`badge badge-${value}`}>${value}</span>`;
}

export function yesNo(b) {
  return b ? 'yes' : 'no';
}

function RateChart({ history }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = () => [history.map((s) => s.atMs / 1000), history.map((s) => s.writesPerS), history.map((s) => s.placementsPerS)];
  useEffect(() => {
    const width = () => Math.max(260, box.current.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 220,
        series: [{}, { label: 'writes/s', stroke: '#2563eb', width: 2 }, { label: 'placements/s', stroke: '#d97706', width: 2 }],
        axes: [{}, { label: 'per second', size: 60 }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      },
      data(),
      box.current,
    );
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: width(), height: 220 }));
    ro.observe(box.current);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data());
  });
  const last = history.at(-1);
  return html`<figure class="chart">
    <div ref=${box} role="img" aria-label=${`writes and placements per second over the last ${Math.round(history.length / 60)} minutes; now ${last?.writesPerS ?? 0} writes/s and ${last?.placementsPerS ?? 0} placements/s`}></div>
    <figcaption>Writes/s (entries applied) and placements/s, one point a second, last ${Math.max(1, Math.round(history.length / 60))} min</figcaption>
  </figure>`;
}

export function Overview({ snap, history }) {
  if (snap === null) return html`<p>Waiting for the cluster…</p>`;
  return html`
    <h1>Overview</h1>
    <section class="cards" aria-label="Leadership">
      <div class="card"><span class="k">Leader</span><span class="v" data-testid="leader">${snap.leaderId ?? 'none'}</span></div>
      <div class="card"><span class="k">Term</span><span class="v" data-testid="term">${snap.term}</span></div>
      <div class="card"><span class="k">Served by</span><span class="v">${snap.servedBy} (${snap.role})</span></div>
      <div class="card"><span class="k">Commit / applied</span><span class="v">${snap.commitIndex} / ${snap.appliedIndex}</span></div>
    </section>
    <section aria-labelledby="members-h">
      <h2 id="members-h">Members</h2>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">ID</th><th scope="col">Role</th><th scope="col">Voter</th><th scope="col">Term</th><th scope="col">Commit</th><th scope="col">Applied</th><th scope="col">Lag</th><th scope="col">Reachable</th></tr></thead>
        <tbody>${snap.members.map(
          (m) => html`<tr data-testid=${`member-${m.id}`}>
            <th scope="row">${m.id}${m.id === snap.leaderId ? ' ★' : ''}</th>
            <td>${m.role === null ? html`<span class="muted">no answer</span>` : html`<${Badge} value=${m.role} />`}</td>
            <td>${m.voter ? 'voter' : 'learner'}</td>
            <td>${m.term ?? '–'}</td><td>${m.commitIndex ?? '–'}</td><td>${m.appliedIndex ?? '–'}</td><td>${m.lag ?? '–'}</td>
            <td>${yesNo(m.reachable && m.answered)}</td>
          </tr>`,
        )}</tbody>
      </table></div>
    </section>
    <section aria-labelledby="tasks-h">
      <h2 id="tasks-h">Tasks by state</h2>
      <ul class="counts">${states.map((s) => html`<li><a href="#/tasks" aria-label=${`${snap.tasks[s]} ${s}: show them`} onClick=${() => sessionStorageSet('minkube.filter.state', s)}><${Badge} value=${s} /> <span data-testid=${`count-${s}`}>${snap.tasks[s]}</span></a></li>`)}</ul>
    </section>
    <section aria-labelledby="workers-h">
      <h2 id="workers-h">Workers</h2>
      ${snap.workers.length === 0 ? html`<p class="muted">No worker has registered.</p>` : html`<ul class="counts">${snap.workers.map((w) => html`<li data-testid=${`worker-${w.id}`}>${w.id} <${Badge} value=${w.state} />${w.availability === 'drain' || w.availability === 'pause' ? html` <${Badge} value=${w.availability} />` : null}</li>`)}</ul>`}
    </section>
    <section aria-labelledby="rates-h">
      <h2 id="rates-h">Rates</h2>
      <${RateChart} history=${history} />
    </section>`;
}

function sessionStorageSet(k, v) {
  try {
    globalThis.sessionStorage.setItem(k, v);
  } catch {
    // private mode: the filter is just not preset
  }
}

// The Minkube dashboard: log-in, the live feed, and the pages (overview, tasks, one task, workers, members).
// Preact + htm from /ui/vendor (no build step). Routes are URL fragments: #/overview, #/tasks, #/tasks/ID, ...
/* global document, location, addEventListener, removeEventListener, CustomEvent */
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Api, Live, bus, focusMain } from './lib.js';
import { Overview } from './overview.js';
import { TasksPage, TaskPage } from './tasks.js';
import { WorkersPage, MembersPage, ServicesPage } from './cluster.js';
import { html } from './html.js';

const api = new Api();

const pages = [
  { path: 'overview', label: 'Overview' },
  { path: 'tasks', label: 'Tasks' },
  { path: 'workers', label: 'Workers' },
  { path: 'members', label: 'Members' },
  { path: 'services', label: 'Services' },
];

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '');
  return { page: parts[0] ?? 'overview', id: parts[1] === undefined ? null : decodeURIComponent(parts[1]) };
}

function Login({ onDone }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(token.trim());
      onDone();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="login" tabindex="-1">
    <h1>Minkube</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <p id="login-help">Log in with an API token (<code>minkube token create</code>); it buys a 15-minute session kept in this tab only.</p>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required value=${token} onInput=${(e) => setToken(e.target.value)} />
      <button type="submit" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

function Shell({ onLogout }) {
  const [route, setRoute] = useState(parseHash());
  const [snap, setSnap] = useState(null);
  const [conn, setConn] = useState({ state: 'connecting', base: api.base });
  const history = useRef([]);

  useEffect(() => {
    const onHash = () => {
      setRoute(parseHash());
      focusMain();
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    const live = new Live(api, {
      onStatus: setConn,
      onEvent: (type, data) => {
        if (type === 'snapshot') {
          if (data.history !== undefined) history.current = [...data.history];
          else if (data.rate !== null && history.current.at(-1)?.atMs !== data.rate.atMs) history.current = [...history.current, data.rate].slice(-300);
          api.setMembers(data.members.map((m) => m.apiAddress));
          setSnap(data);
          bus.dispatchEvent(new CustomEvent('snapshot', { detail: data }));
        } else if (type === 'tasks') {
          bus.dispatchEvent(new CustomEvent('tasks', { detail: data }));
        }
      },
    });
    live.start();
    return () => live.stop();
  }, []);

  const where = conn.base.replace(/^https?:\/\//, '');
  let page;
  switch (route.page) {
    case 'tasks':
      page = route.id === null ? html`<${TasksPage} api=${api} snap=${snap} />` : html`<${TaskPage} api=${api} id=${route.id} />`;
      break;
    case 'workers':
      page = html`<${WorkersPage} snap=${snap} />`;
      break;
    case 'members':
      page = html`<${MembersPage} api=${api} snap=${snap} />`;
      break;
    case 'services':
      page = html`<${ServicesPage} api=${api} />`;
      break;
    default:
      page = html`<${Overview} snap=${snap} history=${history.current} />`;
  }
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); focusMain(); }}>Skip to content</a>
    <header>
      <span class="brand">Minkube</span>
      <nav aria-label="Pages">
        ${pages.map((p) => html`<a href=${`#/${p.path}`} aria-current=${route.page === p.path ? 'page' : undefined}>${p.label}</a>`)}
      </nav>
      <span class=${`conn conn-${conn.state}`} data-testid="connection" role="status" aria-live="polite">
        ${conn.state === 'live' ? `live via ${where}` : conn.state === 'connecting' ? 'connecting…' : `reconnecting (${where} lost)…`}
      </span>
      ${!api.insecure && html`<button type="button" class="link" onClick=${onLogout}>Log out</button>`}
    </header>
    <main id="main" tabindex="-1">${page}</main>`;
}

function App() {
  const [stage, setStage] = useState('checking');
  const [error, setError] = useState(null);
  const check = async () => {
    try {
      setStage((await api.probe()) ? 'in' : 'login');
      if (api.session !== null) api.scheduleRefresh();
    } catch (err) {
      setError(err.message);
    }
  };
  useEffect(() => {
    api.onAuthLost = () => setStage('login');
    void check();
  }, []);
  if (error !== null) return html`<main id="main" class="login"><p class="error" role="alert">${error}</p><button type="button" onClick=${() => { setError(null); void check(); }}>Try again</button></main>`;
  if (stage === 'checking') return html`<main id="main" class="login"><p>Connecting…</p></main>`;
  if (stage === 'login') return html`<${Login} onDone=${() => setStage('in')} />`;
  return html`<${Shell} onLogout=${() => { api.logout(); setStage('login'); }} />`;
}

if (location.hash === '') location.hash = '#/overview';
const root = document.getElementById('app');
root.textContent = ''; // the placeholder shown while the modules load
render(html`<${App} />`, root);

// The dashboard's link to the cluster: the API client (a session as Bearer, falling over to another manager when
// the current one does not answer) and the live feed (GET /v1/events read with fetch(), so it can carry the
// Authorization header that EventSource cannot).
/* global window, document, location, sessionStorage, fetch, AbortController, AbortSignal, TextDecoder, TextDecoderStream, setTimeout, clearTimeout, crypto, EventTarget */

const SESSION_KEY = 'minkube.session';

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(`${code}: ${message}`);
    this.code = code;
    this.status = status;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Api {
  constructor() {
    /** The manager requests go to: the page's own first, then whichever the live feed is connected to. */
    this.base = location.origin;
    /** Every manager's API: the page's origin and the members' apiAddress (same scheme) from the feed. */
    this.bases = [location.origin];
    this.session = null;
    this.insecure = false;
    this.onAuthLost = () => {};
    this.refreshTimer = null;
    try {
      this.session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    } catch {
      this.session = null;
    }
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.session !== null) h.authorization = `Bearer ${this.session.session}`;
    return h;
  }

  /** The members' API addresses, as the feed lists them. */
  setMembers(apiAddresses) {
    const others = apiAddresses.filter((a) => a !== '').map((a) => `${location.protocol}//${a}`);
    this.bases = [...new Set([location.origin, ...others])];
  }

  /** Bases to try, the current one first. */
  order(from = this.base) {
    const i = Math.max(0, this.bases.indexOf(from));
    return [...this.bases.slice(i), ...this.bases.slice(0, i)];
  }

  /**
   * One request; a network failure tries the next manager when `retry` (reads, and writes that are safe to repeat).
   * HTTP errors throw ApiError with the answer's code; a 401 also ends the session.
   */
  async request(method, path, body, { text = false, headers = {}, retry = true, timeoutMs = 10_000 } = {}) {
    let lastErr = null;
    for (const base of retry ? this.order() : [this.base]) {
      let res;
      try {
        const h = this.headers({ ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
        res = await fetch(base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        lastErr = err;
        continue;
      }
      this.base = base;
      const payload = await res.text();
      if (res.ok) return text ? payload : payload === '' ? null : JSON.parse(payload);
      let error = null;
      try {
        error = JSON.parse(payload).error;
      } catch {
        error = null;
      }
      if (res.status === 401 && !path.startsWith('/v1/auth/login')) this.lost();
      throw new ApiError(error?.code ?? `HTTP_${res.status}`, error?.message ?? payload, res.status);
    }
    throw new ApiError('UNREACHABLE', `no manager answered (${lastErr?.message ?? 'no address'})`);
  }

  /**
   * A followed answer (a task's logs): onText gets each piece as it arrives, until the server ends the answer (the
   * promise resolves) or `signal` aborts (it resolves too). An error answer, or a stream cut part-way, throws ApiError.
   */
  async stream(path, onText, signal) {
    let res;
    try {
      res = await fetch(this.base + path, { headers: this.headers({}), signal });
    } catch (err) {
      if (signal.aborted) return;
      throw new ApiError('UNREACHABLE', err.message);
    }
    if (!res.ok) {
      let error = null;
      try {
        error = (await res.json()).error;
      } catch {
        error = null;
      }
      if (res.status === 401) this.lost();
      throw new ApiError(error?.code ?? `HTTP_${res.status}`, error?.message ?? res.statusText, res.status);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        onText(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      if (signal.aborted) return;
      throw new ApiError('UNREACHABLE', `the stream was cut (${err.message})`);
    }
  }

  /**
   * Is a log-in needed? A secure cluster serves this page only over HTTPS, so without a session the answer needs no
   * request (one would be a 401 in the browser's console); over HTTP the cluster is insecure if it answers untokened.
   */
  async probe() {
    if (this.session === null && location.protocol === 'https:') return false;
    try {
      await this.request('GET', '/v1/cluster');
      if (this.session === null) this.insecure = true;
      return true;
    } catch (err) {
      if (err.status === 401) return false;
      throw err;
    }
  }

  async login(token) {
    const answer = await this.request('POST', '/v1/auth/login', { token });
    this.keep(answer);
    return answer;
  }

  keep(answer) {
    this.session = { session: answer.session, expiresAt: answer.expiresAt, role: answer.role };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    this.scheduleRefresh();
  }

  /** A session lives 15 minutes: refresh it (a live session buys the next one) at two thirds of what is left. */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (this.session === null) return;
    const leftMs = Date.parse(this.session.expiresAt) - Date.now();
    this.refreshTimer = setTimeout(async () => {
      try {
        this.keep(await this.request('POST', '/v1/auth/login', { token: this.session.session }));
      } catch {
        this.scheduleRefresh();
      }
    }, Math.max(5_000, (leftMs * 2) / 3));
  }

  lost() {
    if (this.insecure) return;
    this.logout();
    this.onAuthLost();
  }

  logout() {
    clearTimeout(this.refreshTimer);
    this.session = null;
    sessionStorage.removeItem(SESSION_KEY);
  }

  idempotencyKey() {
    return crypto.randomUUID();
  }
}

/**
 * The live feed: one stream at a time, to the current manager; when it ends, fails or stays silent for 5 s, the next
 * manager in turn (no wait for the first retry, then up to 2 s between whole rounds).
 */
export class Live {
  constructor(api, { onEvent, onStatus }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.stopped = false;
    this.ctrl = null;
  }

  start() {
    void this.loop();
  }

  stop() {
    this.stopped = true;
    this.ctrl?.abort();
  }

  async loop() {
    let base = this.api.base;
    let misses = 0;
    while (!this.stopped) {
      let gotEvents = false;
      try {
        gotEvents = await this.stream(base, () => (gotEvents = true));
      } catch {
        // fall through to the next manager
      }
      if (this.stopped) return;
      misses = gotEvents ? 0 : misses + 1;
      this.onStatus({ state: 'reconnecting', base });
      const order = this.api.order(base);
      base = order[1] ?? order[0];
      if (misses >= this.api.bases.length) await sleep(Math.min(2000, 100 * 2 ** Math.min(misses - this.api.bases.length, 5)));
    }
  }

  async stream(base, onFirst) {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    let watchdog = setTimeout(() => ctrl.abort(), 5000);
    let got = false;
    try {
      const res = await fetch(`${base}/v1/events`, { headers: this.api.headers({ accept: 'text/event-stream' }), signal: ctrl.signal });
      if (res.status === 401) {
        this.api.lost();
        this.stopped = true;
        return false;
      }
      if (!res.ok || res.body === null) return false;
      this.api.base = base;
      this.onStatus({ state: 'live', base });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return got;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctrl.abort(), 5000);
        buf += value;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = parseEvent(block);
          if (event === null) continue;
          if (!got) onFirst();
          got = true;
          this.onEvent(event.type, event.data);
        }
      }
    } finally {
      clearTimeout(watchdog);
      ctrl.abort();
    }
  }
}

function parseEvent(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) type = line.slice(7);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  if (data.length === 0) return null;
  try {
    return { type, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}

/** A tiny event bus for task changes, which several pages listen to. */
export const bus = new EventTarget();

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtTime(iso) {
  if (iso === null || iso === undefined) return '–';
  const d = new Date(typeof iso === 'number' ? iso : Date.parse(iso));
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

/**
 * A command line split into its words as a shell would, as the CLI's --health-exec is (src/cli/services.ts
 * splitCommandLine, which test/ui/command-line.test.ts holds this to): words at unquoted blanks; inside single quotes
 * everything is literal; inside double quotes a backslash escapes only \\, ", $ and `; outside quotes a backslash
 * escapes the next character; quoted and unquoted parts that touch make one word. A quote left open is the answer's
 * reason (a string). The page cannot import the CLI's TypeScript: it is served as it is written, with no build.
 */
export function splitCommandLine(line) {
  const words = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return `the single quote at character ${i + 1} is not closed`;
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '\\"$`'.includes(line[j + 1])) j++;
        word += line[j];
      }
      if (j >= line.length) return `the double quote at character ${i + 1} is not closed`;
      inWord = true;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The Command field's words; throws, naming the quote, on one left open. */
export function splitCommand(s) {
  const words = splitCommandLine(s);
  if (typeof words === 'string') throw new ApiError('INVALID_COMMAND', words);
  return words;
}

/** KEY=VALUE lines -> { KEY: VALUE } (blank lines skipped); throws on a line without '='. */
export function parseEnv(s) {
  const env = {};
  for (const raw of s.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ApiError('INVALID_ENV', `"${line}" is not NAME=VALUE`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

export function focusMain() {
  document.getElementById('main')?.focus();
  window.scrollTo(0, 0);
}

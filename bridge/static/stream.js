// One EventSource for every job of the user (GET /api/events, `followAll`: the jobs created later too, in
// another tab, by the CLI or a script), or for the listed unfinished jobs (GET /api/events?jobs=…, `follow`).
//
// Reconnection, in two layers:
// - A dropped connection is reconnected by EventSource itself, which sends the last `id:` as
//   Last-Event-ID; the bridge resumes every job exactly from it. The page shows "Reconnecting…" meanwhile.
// - A fatal error (EventSource gives up: the server answered with an error, or is gone for good) is retried
//   by a new EventSource carrying the same cursor as ?lastEventId=, with exponential backoff from 1 s, up
//   to 5 tries (the seed's recipe); then the page offers a manual retry.
// With a job list, a job joins by opening a new connection with the cursor so far: the jobs already carried
// continue exactly, the new job starts from its first event. Following all jobs, the stream never ends and
// every job is on it already.

const EVENT_TYPES = ['job-status', 'step-status', 'step-progress', 'job-completed', 'job-failed', 'resync'];
const TERMINAL_TYPES = new Set(['job-completed', 'job-failed']);
export const MAX_RETRIES = 5;
export const BASE_DELAY_MS = 1000;

export class JobStream {
  // onEvent(type, data) for every event; onState({state, retryInMs, attempt}) when the connection changes.
  constructor({ onEvent, onState, onFatal }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onFatal = onFatal || (() => {});
    this.active = new Set();
    // Retried jobs (job id → the attempt followed). A replay from the job's first event brings the old
    // attempts first: the page already holds the new one (the retry's answer), so they are skipped up to
    // the retry's own job-status event, and the old end neither ends the job nor shows as a new failure.
    this.awaitedAttempts = new Map();
    this.cursor = '';
    this.source = null;
    this.retries = 0;
    this.retryTimer = null;
    this.state = 'idle';
    this.all = false;
  }

  // Follows every job of the user from now on, on one stream that never ends.
  followAll() {
    if (this.all && this.source) return;
    this.all = true;
    this.active.clear();
    this.cursor = '';
    this.#connect();
  }

  // Follows these jobs (adds to those followed); reconnects only when a job is new to the stream. `attempt`:
  // the jobs were retried, and this is the attempt to follow to its end.
  follow(jobIds, { attempt = 0 } = {}) {
    if (this.all) return; // every job is on the stream already (a retry's events too)
    let added = false;
    for (const jobId of jobIds) {
      if (attempt) this.awaitedAttempts.set(jobId, attempt);
      if (!this.active.has(jobId)) {
        this.active.add(jobId);
        added = true;
      }
    }
    if (added) this.#connect();
  }

  retryNow() {
    this.retries = 0;
    this.#connect();
  }

  close() {
    this.#closeSource();
    this.all = false;
    this.active.clear();
    this.#setState('idle');
  }

  #url() {
    const params = new URLSearchParams(this.all ? {} : { jobs: [...this.active].join(',') });
    if (this.cursor) params.set('lastEventId', this.cursor);
    return `/api/events?${params}`;
  }

  #connect() {
    this.#closeSource();
    if (this.active.size === 0 && !this.all) {
      this.#setState('idle');
      return;
    }
    const source = new EventSource(this.#url());
    this.source = source;
    if (this.state !== 'reconnecting') this.#setState('connecting');
    source.onopen = () => {
      this.retries = 0;
      this.#setState('live');
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.#setState('reconnecting');
      } else {
        this.#fatal();
      }
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => this.#dispatch(source, type, message));
    }
  }

  #dispatch(source, type, message) {
    if (source !== this.source) return;
    if (message.lastEventId) this.cursor = message.lastEventId;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    const awaited = this.awaitedAttempts.get(data.jobId);
    if (awaited) {
      if (!(type === 'job-status' && data.retried && data.attempt >= awaited)) return;
      this.awaitedAttempts.delete(data.jobId);
    }
    this.onEvent(type, data);
    if (TERMINAL_TYPES.has(type) && !this.all) {
      this.active.delete(data.jobId);
      // The server closes the stream after the last job's terminal event; closing first keeps EventSource
      // from reconnecting to a stream with nothing left to say.
      if (this.active.size === 0) {
        this.#closeSource();
        this.#setState('idle');
      }
    }
  }

  #fatal() {
    this.#closeSource();
    this.onFatal();
    if (this.retries >= MAX_RETRIES) {
      this.#setState('offline');
      return;
    }
    const delay = BASE_DELAY_MS * 2 ** this.retries;
    this.retries += 1;
    this.#setState('reconnecting', { retryInMs: delay, attempt: this.retries });
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #closeSource() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  #setState(state, extra = {}) {
    this.state = state;
    this.onState({ state, ...extra });
  }
}

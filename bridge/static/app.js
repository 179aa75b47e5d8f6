// The page's entry point: wires the model, the one event stream of all the user's jobs and the views
// together, and routes between the brief form (#/) and a job (#/jobs/{id}).

import { UNAUTHORIZED_EVENT, cancelJob, deleteJob, getJob, listJobs, retryJob, whoAmI } from './api.js';
import { login, logout } from './auth.js';
import { FailureModal } from './failure.js';
import { BriefForm } from './form.js';
import { JobList } from './joblist.js';
import { JobStore, isFinished } from './jobs.js';
import { JobView } from './jobview.js';
import { JobStream } from './stream.js';
import { WebhooksView } from './webhooks.js';

const $ = (id) => document.getElementById(id);

const store = new JobStore();
const list = new JobList($('jobs-list'), $('jobs-empty'));
const modal = new FailureModal();
const webhooks = new WebhooksView();
// Failures that happened while the page watched: their modal opens when (or as soon as) the job is shown.
const unseenFailures = new Set();
let voicesLoaded = false;

const view = new JobView({
  onCancel: async (jobId) => {
    try {
      await cancelJob(jobId);
    } catch (problem) {
      // 409: it finished first; the stream brings its real end either way.
      if (problem.status !== 409) $('job-live').textContent = `Cancel failed: ${problem.message}`;
    }
  },
  // The answer is the job Queued again: the stream then follows its new attempt past the old end.
  onRetry: async (jobId) => {
    try {
      const job = store.upsert(await retryJob(jobId));
      stream.follow([jobId], { attempt: job?.attempt });
    } catch (problem) {
      $('job-live').textContent = `Retry failed: ${problem.message}`;
    }
  },
  onDelete: async (jobId) => {
    try {
      await deleteJob(jobId);
    } catch (problem) {
      // 404: it is gone already (deleted elsewhere, or by retention).
      if (problem.status !== 404) {
        $('job-live').textContent = `Delete failed: ${problem.message}`;
        return;
      }
    }
    store.remove(jobId);
    list.remove(jobId);
    unseenFailures.delete(jobId);
    if (view.jobId === jobId) window.location.hash = '#/';
  },
  onShowFailure: (jobId) => {
    const job = store.get(jobId);
    if (job) modal.open(job);
  },
  onReviewed: (snapshot) => store.upsert(snapshot),
});

const CONNECTION_TEXT = {
  idle: '',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Live updates stopped.',
};

function showConnection({ state, retryInMs, attempt }) {
  const node = $('connection');
  node.dataset.state = state;
  let text = CONNECTION_TEXT[state] ?? state;
  if (state === 'reconnecting' && retryInMs) {
    text += ` (try ${attempt} of 5 in ${Math.round(retryInMs / 1000)} s)`;
  }
  node.textContent = text;
  $('retry-stream').hidden = state !== 'offline';
}

// A job the page does not know yet (created in another tab, by the CLI or a script) comes with its first
// event on the stream of all jobs: its events wait in `pending` while its snapshot is fetched, then apply in
// order. While this page's own creation is on its way (`creating`), the snapshot is not fetched: the
// creation's answer is that snapshot, and the job's events then replay once its view is shown.
const pending = new Map();
let creating = null;

function onStreamEvent(type, data) {
  if (!data.jobId) return;
  if (data.deleted) {
    pending.delete(data.jobId);
    // remove(), not a bare delete: a snapshot fetched before the deletion can
    // still answer afterwards, and must not bring the job back.
    store.remove(data.jobId);
    list.remove(data.jobId);
    unseenFailures.delete(data.jobId);
    return;
  }
  if (pending.has(data.jobId)) {
    pending.get(data.jobId).push([type, data]);
    return;
  }
  if (store.apply(type, data)) return;
  if (type === 'resync' && data.job) {
    store.upsert(data.job);
    return;
  }
  pending.set(data.jobId, [[type, data]]);
  if (!creating) fetchUnknown(data.jobId);
}

function fetchUnknown(jobId) {
  getJob(jobId).then(
    (snapshot) => {
      store.upsert(snapshot);
      replayPending(jobId);
    },
    () => pending.delete(jobId),
  );
}

// One event per task, as the stream would have brought them, so that the views show every step.
function replayPending(jobId) {
  const events = pending.get(jobId);
  if (!events) return;
  if (events.length === 0) {
    pending.delete(jobId);
    return;
  }
  const [type, data] = events.shift();
  store.apply(type, data);
  setTimeout(() => replayPending(jobId), 0);
}

function creationEnded(createdId = null) {
  clearTimeout(creating);
  creating = null;
  for (const jobId of pending.keys()) if (jobId !== createdId) fetchUnknown(jobId);
}

const stream = new JobStream({
  onEvent: onStreamEvent,
  onState: showConnection,
  // A stream that fails for good may mean the session ended: any REST call then shows the login form.
  onFatal: () => listJobs().catch(() => {}),
});

const form = new BriefForm($('brief-form'), {
  onCreated: (snapshot) => {
    const job = store.upsert(snapshot);
    creationEnded(job.id);
    stream.follow([job.id]);
    window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    // At once, not on the hashchange that follows: the job's events already arriving are applied as they
    // come, and a view shown only afterwards would skip a step that began and ended meanwhile.
    showJob(job.id);
  },
});

// Coalesces a busy job's many progress ticks into at most one render of the job view per 50 ms; status
// changes render at once, so every step is seen Running before it is seen finished.
let renderTimer = null;
function scheduleRender() {
  if (renderTimer !== null) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    const job = view.jobId && store.get(view.jobId);
    if (job) view.render(job);
  }, 50);
}

store.addEventListener('change', ({ detail: { job, type, finishedBy } }) => {
  list.update(job);
  if (finishedBy === 'job-failed' && !job.cancelled) unseenFailures.add(job.id);
  // The final snapshot carries the server's exact step durations and closing statuses.
  if (finishedBy) getJob(job.id).then((snapshot) => store.upsert(snapshot), () => {});
  // The events say that the job waits for review; the script to show comes with its snapshot.
  if (type === 'job-status' && job.status === 'AwaitingReview') {
    getJob(job.id).then((snapshot) => store.upsert(snapshot), () => {});
  }
  if (job.id === view.jobId) {
    if (type === 'step-progress') scheduleRender();
    else view.render(job);
    openUnseenFailure(job);
  }
});

function openUnseenFailure(job) {
  if (unseenFailures.delete(job.id)) {
    view.render(job);
    modal.open(job);
  }
}

// Durations of running steps and the ETA move with the clock, not only with events.
setInterval(() => {
  const job = view.jobId && store.get(view.jobId);
  if (job && !isFinished(job)) view.render(job);
}, 1000);

async function showJob(jobId) {
  let job = store.get(jobId);
  if (!job) {
    try {
      job = store.upsert(await getJob(jobId));
    } catch (problem) {
      $('boot-message').hidden = false;
      $('boot-message').textContent = `Job ${jobId}: ${problem.message}`;
      return;
    }
  }
  if (!isFinished(job)) stream.follow([job.id]);
  $('brief-view').hidden = true;
  view.show(job);
  replayPending(job.id);
  list.select(job.id);
  openUnseenFailure(job);
}

function route() {
  $('boot-message').hidden = true;
  const match = /^#\/jobs\/([^/]+)$/.exec(window.location.hash);
  const onWebhooks = window.location.hash === '#/webhooks';
  $('webhooks-link').toggleAttribute('aria-current', onWebhooks);
  if (!onWebhooks) webhooks.hide();
  if (onWebhooks) {
    view.hide();
    list.select(null);
    $('brief-view').hidden = true;
    webhooks.show();
  } else if (match) {
    showJob(decodeURIComponent(match[1]));
  } else {
    view.hide();
    list.select(null);
    $('brief-view').hidden = false;
  }
}

function showLogin(message = '') {
  stream.close();
  $('boot-message').hidden = true;
  $('app-view').hidden = true;
  $('logout').hidden = true;
  $('user').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message;
  $('api-key').focus();
}

async function showApp() {
  let jobs;
  try {
    ({ jobs } = await listJobs());
  } catch (problem) {
    if (problem.status === 401) showLogin();
    else $('boot-message').textContent = `The server cannot be reached: ${problem.message}`;
    return;
  }
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  for (const snapshot of jobs) store.upsert(snapshot);
  list.render(store.list());
  stream.followAll();
  if (!voicesLoaded) {
    voicesLoaded = true;
    form.loadVoices();
    form.loadThemes();
  }
  showUser();
  // Log out only where there is a session to end: a request without the cookie tells whether the server
  // requires authentication at all.
  fetch('/api/stages', { credentials: 'omit' }).then(
    (response) => {
      $('logout').hidden = response.status !== 401;
    },
    () => {},
  );
  route();
}

// The header names the user the page acts as, so that nobody works in an account they did not log into.
function showUser() {
  whoAmI().then(
    ({ user }) => {
      $('user-name').textContent = user;
      $('user').hidden = !user || user === 'anonymous';
    },
    () => {
      $('user').hidden = true;
    },
  );
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = $('api-key').value.trim();
  try {
    await login(key);
  } catch (problem) {
    $('login-error').textContent = problem.status === 401 ? 'That key was not accepted.' : problem.message;
    $('api-key').setAttribute('aria-invalid', 'true');
    return;
  }
  $('api-key').value = '';
  $('api-key').removeAttribute('aria-invalid');
  $('login-error').textContent = '';
  showApp();
});

$('logout').addEventListener('click', async () => {
  try {
    await logout();
  } finally {
    window.location.reload();
  }
});

// A submitted brief may come back as a job whose events are on the stream already (see `pending`); a
// creation refused or lost lets the other unknown jobs be fetched after 10 s.
$('brief-form').addEventListener('submit', () => {
  clearTimeout(creating);
  creating = setTimeout(() => creationEnded(), 10000);
});
$('retry-stream').addEventListener('click', () => stream.retryNow());
window.addEventListener(UNAUTHORIZED_EVENT, () => showLogin('Your session ended. Log in again.'));
window.addEventListener('hashchange', route);

showApp();

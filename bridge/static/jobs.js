// The page's model of jobs: REST snapshots, then SSE events applied on top.
//
// Every update is monotonic: a status only moves forward (Pending → Running → a final status) and a bar only
// grows. Replaying events the page has already seen (a snapshot followed by the job's stream from its first
// event, or a reconnect) therefore changes nothing, and steps are keyed by name, so none appears twice.

export const CANCELLED_CODE = 'E311-CANCELLED';
const STEP_RANK = { Pending: 0, Running: 1, Succeeded: 2, Failed: 2, Skipped: 2, Cancelled: 2 };
const JOB_RANK = { Queued: 0, Running: 1, AwaitingReview: 1, Succeeded: 2, Failed: 2 };

const forward = (current, next, ranks) => ((ranks[next] ?? 0) >= (ranks[current] ?? 0) ? next : current);
// A job under review goes back: Running, AwaitingReview, then Queued and Running again once approved. Only
// a final status is final; events come in their log's order, so a replay ends where the log ends.
const forwardJob = (current, next) =>
  current === 'AwaitingReview' && JOB_RANK[next] !== undefined ? next : forward(current, next, JOB_RANK);
const grow = (current, next) => (typeof next === 'number' && next > current ? Math.min(next, 100) : current);

export const isFinished = (job) => JOB_RANK[job.status] === 2;
export const isStepFinished = (step) => STEP_RANK[step.status] === 2;

// The word a badge shows: cancelled jobs are Failed on the wire (the seed's rule) but say what happened.
export const jobBadge = (job) => (job.cancelled ? 'Cancelled' : job.status);

function newJob(jobId) {
  return {
    id: jobId,
    topic: '',
    spec: null,
    status: 'Queued',
    attempt: 0,
    cancelled: false,
    pct: 0,
    stage: '',
    message: '',
    etaSeconds: null,
    etaReceivedAt: 0,
    queuePosition: null,
    estimatedStartSeconds: null,
    queueReceivedAt: 0,
    steps: new Map(),
    output: null,
    // The latest growing preview of a render ({ videoUrl, durationSeconds, totalSeconds, revision }).
    preview: null,
    errors: [],
    correlationId: '',
    createTime: null,
    startTime: null,
    finishTime: null,
    review: null,
  };
}

function ensureStep(job, name, title) {
  const key = name || title;
  let step = job.steps.get(key);
  if (!step) {
    step = { name: key, title: title || key, status: 'Pending', pct: 0, message: '', start: null, end: null,
      duration: null };
    job.steps.set(key, step);
  } else if (title) {
    step.title = title;
  }
  return step;
}

function setStepStatus(step, status, time) {
  step.status = forward(step.status, status, STEP_RANK);
  if (step.status === 'Running' && !step.start) step.start = time || new Date().toISOString();
  if (isStepFinished(step) && !step.end) step.end = time || new Date().toISOString();
  if (step.status === 'Succeeded') step.pct = 100;
}

// A retry (RetryJob) is the one way back from a final status. The server's rule (recorder.retried): the job is
// Queued again with no result, and every step it runs again is Pending: all of them after a cancel, else all
// but the succeeded ones, whose checkpoints the new attempt reuses.
function startAttempt(job, attempt) {
  const startOver = job.cancelled;
  job.attempt = attempt;
  job.status = 'Queued';
  job.cancelled = false;
  job.errors = [];
  job.output = null;
  job.preview = null;
  job.finishTime = null;
  job.etaSeconds = null;
  if (startOver) job.pct = 0;
  for (const step of job.steps.values()) {
    if (!startOver && step.status === 'Succeeded') continue;
    Object.assign(step, { status: 'Pending', pct: 0, message: '', start: null, end: null, duration: null });
  }
}

// A waiting job's place (queuePosition, estimatedStartSeconds), from an event or a snapshot; any other
// status clears it.
function setQueuePlace(job, data) {
  const waiting = job.status === 'Queued' && typeof data.queuePosition === 'number';
  if (!waiting && job.status === 'Queued' && data.status === 'Queued') return; // the creation event
  job.queuePosition = waiting ? data.queuePosition : null;
  job.estimatedStartSeconds = waiting && typeof data.estimatedStartSeconds === 'number'
    ? data.estimatedStartSeconds : null;
  job.queueReceivedAt = Date.now();
}

// Only a longer preview (a higher revision) replaces the one the page has: a replay changes nothing.
function setPreview(job, preview) {
  if (preview && typeof preview.revision === 'number' && preview.revision > (job.preview?.revision ?? 0)) {
    job.preview = preview;
  }
}

function mergeSnapshot(job, snapshot) {
  // A snapshot of an earlier attempt than the page follows was read before a retry and answered after it
  // (the final snapshot fetched on the old attempt's end, say): it would bring the old end back.
  if (typeof snapshot.attempt === 'number' && snapshot.attempt < job.attempt) return;
  // A snapshot of a later attempt than the page knows: the job was retried meanwhile.
  if (typeof snapshot.attempt === 'number' && snapshot.attempt > job.attempt) {
    if (job.attempt) startAttempt(job, snapshot.attempt);
    job.attempt = snapshot.attempt;
  }
  job.spec = snapshot.spec || job.spec;
  job.topic = snapshot.spec?.brief?.topic ?? job.topic;
  job.status = forwardJob(job.status, snapshot.status);
  setQueuePlace(job, snapshot);
  job.review = snapshot.review ?? job.review;
  job.cancelled = job.cancelled || Boolean(snapshot.cancelled);
  job.pct = grow(job.pct, snapshot.jobProgressPct);
  job.stage = snapshot.stage || job.stage;
  job.correlationId = snapshot.correlationId || job.correlationId;
  job.createTime = snapshot.createTime || job.createTime;
  job.startTime = snapshot.startTime || job.startTime;
  job.finishTime = snapshot.finishTime || job.finishTime;
  job.output = snapshot.output || job.output;
  setPreview(job, snapshot.preview);
  if (snapshot.errors?.length) job.errors = snapshot.errors;
  for (const s of snapshot.steps || []) {
    const step = ensureStep(job, s.name, s.step);
    if (s.startTime && !step.start) step.start = s.startTime;
    if (s.endTime && !step.end) step.end = s.endTime;
    setStepStatus(step, s.status, s.endTime || s.startTime);
    step.pct = grow(step.pct, s.progressPct);
    if (s.message) step.message = s.message;
    if (typeof s.durationSeconds === 'number') step.duration = s.durationSeconds;
  }
  if (job.status === 'Succeeded') job.pct = 100;
}

// The server's rule for a job that fails or is cancelled (its recorder writes no step event for it): the
// running step ends Failed or Cancelled, the steps that never started are Skipped.
function closeOpenSteps(job, time) {
  for (const step of job.steps.values()) {
    if (step.status === 'Running') setStepStatus(step, job.cancelled ? 'Cancelled' : 'Failed', time);
    else if (step.status === 'Pending') step.status = 'Skipped';
  }
}

function applyEvent(job, type, data) {
  job.correlationId = data.correlationId || job.correlationId;
  job.pct = grow(job.pct, data.jobProgressPct);
  if (typeof data.etaSeconds === 'number') {
    job.etaSeconds = data.etaSeconds;
    job.etaReceivedAt = Date.now();
  }
  if (data.message) job.message = data.message;
  switch (type) {
    case 'job-status':
      // Every retry event resets the run, also when replayed: the events after it bring the job up to date.
      if (data.retried) {
        startAttempt(job, data.attempt || job.attempt + 1);
        if (typeof data.jobProgressPct === 'number') job.pct = data.jobProgressPct;
      }
      job.status = forwardJob(job.status, data.status);
      setQueuePlace(job, data);
      if (job.status === 'Running' && !job.startTime) job.startTime = data.time || null;
      break;
    case 'step-status': {
      const step = ensureStep(job, data.stepName, data.step);
      setStepStatus(step, data.status, data.time);
      if (data.message) step.message = data.message;
      if (step.status === 'Running') job.stage = step.title;
      break;
    }
    case 'step-progress': {
      const step = ensureStep(job, data.stepName, data.step);
      if (step.status === 'Pending') setStepStatus(step, 'Running', data.time);
      step.pct = grow(step.pct, data.progressPct);
      if (data.message) step.message = data.message;
      setPreview(job, data.preview);
      break;
    }
    case 'job-completed':
      job.status = 'Succeeded';
      job.pct = 100;
      job.output = data.output || job.output;
      job.finishTime = data.time || job.finishTime;
      job.etaSeconds = 0;
      break;
    case 'job-failed':
      job.status = forward(job.status, 'Failed', JOB_RANK);
      job.errors = data.errors || [];
      job.cancelled = job.cancelled || job.errors.some((e) => e.code === CANCELLED_CODE);
      job.finishTime = data.time || job.finishTime;
      closeOpenSteps(job, data.time);
      break;
    case 'resync':
      mergeSnapshot(job, data.job);
      break;
    default:
      break;
  }
}

export class JobStore extends EventTarget {
  constructor() {
    super();
    this.jobs = new Map();
    // Jobs this page deleted: a snapshot or event still on its way (the cancel before the deletion, its
    // GET) must not bring one back.
    this.removed = new Set();
  }

  get(jobId) {
    return this.jobs.get(jobId);
  }

  // Newest first, as the server lists them.
  list() {
    return [...this.jobs.values()].sort((a, b) => String(b.createTime).localeCompare(String(a.createTime)));
  }

  // Returns the job; undefined for a job this page deleted.
  upsert(snapshot) {
    if (this.removed.has(snapshot.jobId)) return undefined;
    const job = this.jobs.get(snapshot.jobId) || newJob(snapshot.jobId);
    this.jobs.set(job.id, job);
    mergeSnapshot(job, snapshot);
    this.#changed(job, 'snapshot', null);
    return job;
  }

  // A deleted job leaves the model (the page deleted it: DeleteJob).
  remove(jobId) {
    this.jobs.delete(jobId);
    this.removed.add(jobId);
  }

  // Applies one SSE event; returns the job, or undefined for an event of a job the page does not know.
  apply(type, data) {
    const job = this.jobs.get(data.jobId);
    if (!job) return undefined;
    const wasFinished = isFinished(job);
    applyEvent(job, type, data);
    this.#changed(job, type, !wasFinished && isFinished(job) ? type : null);
    return job;
  }

  // `type` is the event's name ('snapshot' for REST); `finishedBy` the terminal event that just ended it.
  #changed(job, type, finishedBy) {
    this.dispatchEvent(new CustomEvent('change', { detail: { job, type, finishedBy } }));
  }
}

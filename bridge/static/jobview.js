// The job view: the steps with their own bars, durations and messages; the overall bar with an ETA;
// Cancel, Retry (a failed or cancelled job) and Delete (asked in a dialog first); the growing preview while
// a render publishes one, then the video with its Download button on success; a failure summary (the modal
// opens from it).
// Rows are created once per step name and updated in place: a step can never appear twice.

import {
  element, formatBytes, formatPct, formatQueuePlace, formatSeconds, formatTime, secondsBetween,
} from './format.js';
import { isFinished, isStepFinished, jobBadge } from './jobs.js';
import { ScriptReview } from './review.js';

const $ = (id) => document.getElementById(id);

function stepDuration(step) {
  if (typeof step.duration === 'number' && isStepFinished(step)) return step.duration;
  if (!step.start) return null;
  return secondsBetween(step.start, isStepFinished(step) ? step.end : null);
}

// The server's own estimate when it sent one (counted down since it arrived), else one from the pace so far.
export function etaSeconds(job) {
  // A job waiting for its owner's review has no end to estimate.
  if (isFinished(job) || job.status === 'AwaitingReview') return null;
  if (typeof job.etaSeconds === 'number') {
    return Math.max(0, job.etaSeconds - (Date.now() - job.etaReceivedAt) / 1000);
  }
  const elapsed = job.startTime ? secondsBetween(job.startTime, null) : null;
  if (elapsed === null || job.pct < 5) return null;
  return (elapsed * (100 - job.pct)) / job.pct;
}

// A waiting job's place instead of an ETA; its estimated start counts down since it arrived.
function queuePlace(job) {
  if (job.status !== 'Queued' || typeof job.queuePosition !== 'number') return null;
  const wait = typeof job.estimatedStartSeconds === 'number'
    ? Math.max(0, job.estimatedStartSeconds - (Date.now() - job.queueReceivedAt) / 1000) : null;
  return formatQueuePlace(job.queuePosition, wait);
}

// The server's estimate is linear in the overall percent, so a slow last stage can outlive it: past zero
// the page says so instead of showing a countdown stuck at 0.
function formatEta(seconds) {
  if (seconds === null) return '';
  if (seconds < 1) return 'ETA: finishing…';
  return `ETA about ${formatSeconds(Math.ceil(seconds))}`;
}

export class JobView {
  // onRetry and onDelete return promises; the view's buttons wait on them.
  constructor({ onCancel, onRetry, onDelete, onShowFailure, onReviewed }) {
    this.section = $('job-view');
    this.review = new ScriptReview({ onUpdated: onReviewed });
    this.stepsList = $('steps');
    this.video = $('job-video');
    this.cancelButton = $('cancel-job');
    this.retryButton = $('retry-job');
    this.deleteButton = $('delete-job');
    this.deleteDialog = $('delete-dialog');
    this.jobId = null;
    this.attempt = 0;
    this.rows = new Map();
    this.liveText = '';
    this.cancelButton.addEventListener('click', () => {
      if (!this.jobId) return;
      this.cancelButton.disabled = true;
      this.cancelButton.textContent = 'Cancelling…';
      onCancel(this.jobId);
    });
    this.retryButton.addEventListener('click', async () => {
      if (!this.jobId) return;
      this.retryButton.disabled = true;
      this.retryButton.textContent = 'Retrying…';
      await onRetry(this.jobId);
      this.#resetRetry();
    });
    // Deleting cannot be undone, so the dialog asks first, with "Keep it" focused.
    this.deleteButton.addEventListener('click', () => {
      if (!this.jobId) return;
      this.deleteDialog.returnValue = '';
      this.deleteDialog.dataset.jobId = this.jobId;
      this.deleteDialog.showModal();
    });
    this.deleteDialog.addEventListener('close', async () => {
      const jobId = this.deleteDialog.dataset.jobId;
      if (this.deleteDialog.returnValue !== 'delete' || !jobId) return;
      this.deleteButton.disabled = true;
      this.deleteButton.textContent = 'Deleting…';
      await onDelete(jobId);
      this.#resetDelete();
    });
    $('show-failure').addEventListener('click', () => this.jobId && onShowFailure(this.jobId));
  }

  #resetCancel() {
    this.cancelButton.disabled = false;
    this.cancelButton.textContent = 'Cancel';
  }

  #resetRetry() {
    this.retryButton.disabled = false;
    this.retryButton.textContent = 'Retry';
  }

  #resetDelete() {
    this.deleteButton.disabled = false;
    this.deleteButton.textContent = 'Delete';
  }

  show(job) {
    if (this.jobId !== job.id) {
      this.jobId = job.id;
      this.rows.clear();
      this.stepsList.replaceChildren();
      this.video.removeAttribute('src');
      this.video.removeAttribute('poster');
      delete this.video.dataset.source;
      this.video.replaceChildren();
      this.video.load();
      this.attempt = job.attempt;
      this.#resetCancel();
      this.#resetRetry();
      this.#resetDelete();
      this.liveText = '';
    }
    this.section.hidden = false;
    this.render(job);
  }

  hide() {
    this.section.hidden = true;
    this.jobId = null;
    this.video.pause();
  }

  #stepRow(step) {
    let row = this.rows.get(step.name);
    if (row) return row;
    row = element('li', 'step');
    row.dataset.step = step.name;
    const head = element('div', 'step-head');
    const title = element('span', 'step-title');
    const badge = element('span', 'badge');
    const duration = element('span', 'step-duration');
    head.append(title, badge, duration);
    const barLine = element('div', 'bar-line');
    const bar = element('progress', 'step-bar');
    bar.max = 100;
    bar.value = 0;
    const pct = element('span', 'pct');
    barLine.append(bar, pct);
    const message = element('p', 'step-message');
    row.append(head, barLine, message);
    this.rows.set(step.name, row);
    this.stepsList.append(row);
    return row;
  }

  render(job) {
    if (job.id !== this.jobId) return;
    const word = jobBadge(job);
    $('job-title').textContent = job.topic || job.id;
    const badge = $('job-badge');
    badge.textContent = word;
    badge.dataset.status = word;
    this.section.dataset.status = word;
    const meta = [`Created ${formatTime(job.createTime)}`];
    if (job.correlationId) meta.push(`correlation id ${job.correlationId}`);
    $('job-meta').textContent = meta.join(' · ');

    const overall = $('overall-bar');
    overall.value = job.pct;
    overall.setAttribute('aria-valuetext', `${formatPct(job.pct)} ${word}`);
    $('overall-pct').textContent = formatPct(job.pct);
    const eta = etaSeconds(job);
    $('job-eta').textContent = queuePlace(job) ?? formatEta(eta);

    for (const step of job.steps.values()) {
      const row = this.#stepRow(step);
      row.dataset.status = step.status;
      row.querySelector('.step-title').textContent = step.title;
      const stepBadge = row.querySelector('.badge');
      stepBadge.textContent = step.status;
      stepBadge.dataset.status = step.status;
      const seconds = stepDuration(step);
      row.querySelector('.step-duration').textContent = seconds === null ? '' : formatSeconds(seconds);
      const bar = row.querySelector('.step-bar');
      bar.value = step.pct;
      bar.setAttribute('aria-label', `${step.title} progress`);
      row.querySelector('.pct').textContent = formatPct(step.pct);
      row.querySelector('.step-message').textContent = step.message;
    }

    // Announced to screen readers on changes of step or status, not on every tick of a bar.
    const running = [...job.steps.values()].find((s) => s.status === 'Running');
    let live = `${word}`;
    if (running && !isFinished(job)) live = `${running.title}: running`;
    if (isFinished(job)) live = `Job ${word.toLowerCase()}`;
    if (job.status === 'AwaitingReview') live = 'The script waits for your review';
    if (live !== this.liveText) {
      this.liveText = live;
      $('job-live').textContent = live;
    }

    // A new attempt (a retry) can be cancelled again, whatever became of the last one's Cancel.
    if (job.attempt !== this.attempt) {
      this.attempt = job.attempt;
      this.#resetCancel();
    }
    this.cancelButton.hidden = isFinished(job);
    this.retryButton.hidden = job.status !== 'Failed';
    this.review.render(job);
    this.#renderResult(job);
    this.#renderFailure(job);
  }

  // The finished video, or while the job renders the growing preview of the part already rendered. The
  // player moves from one to the next (a longer preview, then the final file) at the same position, still
  // playing if it was (or had reached the end of the shorter preview).
  #renderResult(job) {
    const result = $('job-result');
    const output = job.status === 'Succeeded' ? job.output : null;
    const preview = !output && !isFinished(job) ? job.preview : null;
    result.hidden = !output && !preview;
    $('preview-note').hidden = !preview;
    $('result-actions').hidden = !output;
    if (preview) {
      const rendered = formatSeconds(Math.round(preview.durationSeconds * 10) / 10);
      const total = formatSeconds(Math.round(preview.totalSeconds * 10) / 10);
      $('preview-note').textContent = `Preview: the first ${rendered} of ${total}, while the rest renders`;
      this.#play(preview.videoUrl, 'preview', []);
      return;
    }
    if (!output) return;
    if (this.video.getAttribute('src') !== output.videoUrl) {
      if (output.thumbnailUrl) this.video.poster = output.thumbnailUrl;
      this.#play(output.videoUrl, 'output', this.#captionTracks(job, output));
    }
    const download = $('download');
    download.href = output.videoUrl;
    download.setAttribute('download', `reelcast-${job.id}.mp4`);
    $('file-size').textContent = formatBytes(output.sizeBytes);
  }

  #play(url, source, tracks) {
    const video = this.video;
    if (video.getAttribute('src') === url) return;
    const position = video.getAttribute('src') ? video.currentTime : 0;
    const playing = video.getAttribute('src') ? !video.paused || video.ended : false;
    video.replaceChildren(...tracks);
    video.dataset.source = source;
    video.src = url;
    if (!position && !playing) return;
    video.addEventListener('loadedmetadata', () => {
      video.currentTime = Math.min(position, video.duration || position);
      if (playing) video.play().catch(() => {}); // refused without a gesture or muting: the user presses play
    }, { once: true });
  }

  // The WebVTT captions as a track the player's menu offers; shown at once only when the picture has
  // none burned in (soft captions: browsers do not play the MP4's own subtitle track).
  #captionTracks(job, output) {
    if (!output.webvttUrl) return [];
    const track = document.createElement('track');
    track.kind = 'captions';
    track.label = 'Captions';
    track.srclang = job.spec?.brief?.language || 'en';
    track.src = output.webvttUrl;
    track.default = job.spec?.render?.captionMode === 'soft';
    return [track];
  }

  #renderFailure(job) {
    const failed = job.status === 'Failed';
    $('failure-summary').hidden = !failed;
    if (!failed) return;
    const error = job.errors[0];
    $('failure-summary-text').textContent = job.cancelled
      ? 'The job was cancelled.'
      : `${error ? `${error.code}: ${error.message}` : 'The job failed.'}`;
    $('show-failure').hidden = job.cancelled;
  }
}

// The jobs list: one row per job with a live status badge and a small progress bar, updated in place.

import { element, formatPct } from './format.js';
import { jobBadge } from './jobs.js';

export class JobList {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.rows = new Map();
    this.selected = null;
  }

  #row(job) {
    let row = this.rows.get(job.id);
    if (row) return row;
    row = element('li', 'job-row');
    row.dataset.jobId = job.id;
    const link = element('a', 'job-link');
    link.href = `#/jobs/${encodeURIComponent(job.id)}`;
    const topic = element('span', 'job-topic');
    const badge = element('span', 'badge');
    const bar = element('progress', 'job-bar');
    bar.max = 100;
    link.append(topic, badge, bar);
    row.append(link);
    this.rows.set(job.id, row);
    return row;
  }

  // Renders every job, newest first; rows are reused, so focus stays where it was.
  render(jobs) {
    this.empty.hidden = jobs.length > 0;
    jobs.forEach((job, index) => {
      const row = this.#row(job);
      this.update(job);
      if (this.list.children[index] !== row) this.list.insertBefore(row, this.list.children[index] || null);
    });
  }

  update(job) {
    const row = this.#row(job);
    const word = jobBadge(job);
    row.querySelector('.job-topic').textContent = job.topic || job.id;
    const badge = row.querySelector('.badge');
    badge.textContent = word;
    badge.dataset.status = word;
    const bar = row.querySelector('.job-bar');
    bar.value = job.pct;
    bar.setAttribute('aria-label', `${job.topic || job.id}: ${word}, ${formatPct(job.pct)}`);
    row.querySelector('.job-link').toggleAttribute('aria-current', job.id === this.selected);
    if (!row.isConnected) this.list.prepend(row);
    this.empty.hidden = true;
  }

  // Takes a deleted job's row away.
  remove(jobId) {
    this.rows.get(jobId)?.remove();
    this.rows.delete(jobId);
    this.empty.hidden = this.rows.size > 0;
  }

  select(jobId) {
    this.selected = jobId;
    for (const [id, row] of this.rows) {
      const link = row.querySelector('.job-link');
      if (id === jobId) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }
}

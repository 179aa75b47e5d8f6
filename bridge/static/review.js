// The script review of a job that waits for its owner (status AwaitingReview): one text area per scene's
// narration, Save (PUT /api/jobs/{id}/script with the revision it was edited from) and Approve (POST
// /api/jobs/{id}/approve with the scenes as shown). The text areas are built once per job and revision, so
// the page's re-renders never overwrite what the owner is typing.

import { approveJob, updateScript } from './api.js';
import { element, formatTime } from './format.js';

const $ = (id) => document.getElementById(id);

export class ScriptReview {
  constructor({ onUpdated }) {
    this.form = $('script-review');
    this.list = $('review-scenes');
    this.message = $('review-message');
    this.onUpdated = onUpdated;
    this.shown = '';
    this.job = null;
    $('save-script').addEventListener('click', () => this.#send('save'));
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#send('approve');
    });
  }

  render(job) {
    const waiting = job.status === 'AwaitingReview' && job.review && !job.review.approved;
    this.form.hidden = !waiting;
    if (!waiting) return;
    this.job = job;
    const key = `${job.id}:${job.review.revision}`;
    if (key === this.shown) return;
    this.shown = key;
    this.message.textContent = '';
    $('review-expiry').textContent = job.review.expireTime
      ? `It expires at ${formatTime(job.review.expireTime)}.`
      : '';
    this.list.replaceChildren(
      ...job.review.scenes.map((scene, index) => {
        const item = element('li', 'review-scene');
        const label = element('label', '', scene.title || `Scene ${index + 1}`);
        const text = element('textarea', 'review-narration');
        text.id = `review-narration-${index}`;
        text.name = `narration-${index}`;
        text.rows = 3;
        text.value = scene.narration;
        label.htmlFor = text.id;
        item.append(label, text);
        return item;
      }),
    );
  }

  // The scenes as edited: each keeps its title and visual hint; the caption follows the new narration.
  #scenes() {
    return this.job.review.scenes.map((scene, index) => ({
      title: scene.title,
      narration: $(`review-narration-${index}`).value,
      visualHint: scene.visualHint,
    }));
  }

  async #send(action) {
    if (!this.job) return;
    const buttons = [$('save-script'), $('approve-script')];
    for (const button of buttons) button.disabled = true;
    try {
      const { id, review } = this.job;
      const snapshot =
        action === 'save' ? await updateScript(id, this.#scenes(), review.revision) : await approveJob(id, this.#scenes());
      this.onUpdated(snapshot); // shows the new revision, then says so
      this.message.textContent = action === 'save' ? `Saved (revision ${snapshot.review.revision}).` : 'Approved.';
    } catch (problem) {
      const fields = problem.violations.map((v) => `${v.field}: ${v.description}`).join('; ');
      this.message.textContent = `${problem.errorCode || 'Error'}: ${problem.message}${fields ? ` (${fields})` : ''}`;
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }
}

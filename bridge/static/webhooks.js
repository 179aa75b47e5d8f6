// The Webhooks view (#/webhooks): register an endpoint, see its secret once, list endpoints with their
// failing mark and last error, rotate a secret, replay a job's events, delete (after a confirmation).

import {
  createWebhook,
  deleteWebhook,
  listWebhooks,
  replayWebhook,
  rotateWebhookSecret,
} from './api.js';
import { copyText } from './failure.js';
import { element } from './format.js';

const $ = (id) => document.getElementById(id);

// "team=video, env=prod" (or one per line) as a labels object; a term without "=" is refused.
function parseLabels(text) {
  const labels = {};
  for (const term of text.split(/[,\n]/).map((t) => t.trim()).filter(Boolean)) {
    const at = term.indexOf('=');
    if (at < 1) throw new Error(`"${term}" is not key=value`);
    labels[term.slice(0, at).trim()] = term.slice(at + 1).trim();
  }
  return labels;
}

function filterText(webhook) {
  if (webhook.filter === 'terminal') return 'Terminal events only';
  if (webhook.filter === 'statuses') return `Statuses: ${webhook.statuses.join(', ')}`;
  return 'Every event';
}

function problemText(problem) {
  const code = problem.errorCode ? `${problem.errorCode}: ` : '';
  const fix = problem.remediation ? ` ${problem.remediation}` : '';
  return `${code}${problem.message}${fix}`;
}

export class WebhooksView {
  constructor() {
    this.section = $('webhooks-view');
    this.form = $('webhook-form');
    this.list = $('webhooks-list');
    this.dialog = $('webhook-delete-dialog');
    this.replayDialog = $('webhook-replay-dialog');
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#create();
    });
    for (const radio of this.form.querySelectorAll('input[name="webhook-filter"]')) {
      radio.addEventListener('change', () => this.#syncFilter());
    }
    $('copy-webhook-secret').addEventListener('click', async () => {
      const button = $('copy-webhook-secret');
      try {
        await copyText($('webhook-secret-value').textContent);
        button.textContent = 'Copied';
      } catch {
        button.textContent = 'Copy failed: select the secret';
      }
    });
    $('hide-webhook-secret').addEventListener('click', () => {
      $('webhook-secret').hidden = true;
      $('webhook-secret-value').textContent = '';
    });
    this.dialog.addEventListener('close', () => {
      const id = this.dialog.dataset.webhookId;
      if (this.dialog.returnValue === 'delete' && id) this.#delete(id);
    });
    $('webhook-replay-form').addEventListener('submit', (event) => {
      if (event.submitter?.value !== 'replay') return;
      event.preventDefault();
      this.#replay();
    });
    // Failing marks change as deliveries fail or succeed on the server: the list is read again on demand.
    $('refresh-webhooks').addEventListener('click', () => this.refresh());
    this.#syncFilter();
  }

  show() {
    this.section.hidden = false;
    this.refresh();
  }

  hide() {
    this.section.hidden = true;
  }

  #syncFilter() {
    const statuses = this.form.querySelector('input[name="webhook-filter"][value="statuses"]').checked;
    $('webhook-statuses').disabled = !statuses;
  }

  #say(text) {
    $('webhooks-live').textContent = text;
  }

  #showSecret(title, secret) {
    $('webhook-secret-title').textContent = title;
    $('webhook-secret-value').textContent = secret;
    $('copy-webhook-secret').textContent = 'Copy secret';
    $('webhook-secret').hidden = false;
    $('webhook-secret-value').focus();
  }

  async refresh() {
    try {
      const { webhooks } = await listWebhooks();
      this.render(webhooks);
    } catch (problem) {
      this.#say(`The endpoints cannot be listed: ${problemText(problem)}`);
    }
  }

  render(webhooks) {
    $('webhooks-empty').hidden = webhooks.length > 0;
    this.list.replaceChildren(...webhooks.map((webhook) => this.#row(webhook)));
  }

  #row(webhook) {
    const row = element('li', 'webhook-row');
    row.dataset.webhookId = webhook.webhookId;
    const head = element('div', 'webhook-head');
    const url = element('code', 'webhook-url', webhook.url);
    head.append(url);
    if (webhook.failing) {
      const mark = element('span', 'badge webhook-failing', 'Failing');
      mark.dataset.status = 'Failed';
      head.append(mark);
    }
    // Sorted by key: the server's map has no order of its own.
    const labels = Object.entries(webhook.labels)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    const meta = element('p', 'muted webhook-meta', filterText(webhook) + (labels ? ` · labels ${labels}` : ''));
    row.append(head, meta);
    if (webhook.lastError) {
      const error = element('p', 'webhook-error');
      error.append(element('span', 'label', 'Last error'), ' ', webhook.lastError);
      row.append(error);
    }
    const actions = element('div', 'actions');
    const name = webhook.url;
    const rotate = element('button', 'button small secondary webhook-rotate', 'Rotate secret');
    rotate.type = 'button';
    rotate.setAttribute('aria-label', `Rotate the secret of ${name}`);
    rotate.addEventListener('click', () => this.#rotate(webhook.webhookId, rotate));
    const replay = element('button', 'button small secondary webhook-replay', 'Replay');
    replay.type = 'button';
    replay.setAttribute('aria-label', `Replay a job's events to ${name}`);
    replay.addEventListener('click', () => {
      this.replayDialog.dataset.webhookId = webhook.webhookId;
      $('webhook-replay-error').textContent = '';
      this.replayDialog.showModal();
    });
    const remove = element('button', 'button small danger webhook-delete', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete the endpoint ${name}`);
    remove.addEventListener('click', () => {
      this.dialog.returnValue = '';
      this.dialog.dataset.webhookId = webhook.webhookId;
      this.dialog.showModal();
    });
    actions.append(rotate, replay, remove);
    row.append(actions);
    return row;
  }

  async #create() {
    const error = $('webhook-form-error');
    error.hidden = true;
    const filter = this.form.querySelector('input[name="webhook-filter"]:checked').value;
    const body = { url: $('webhook-url').value.trim(), filter };
    if (filter === 'statuses') {
      body.statuses = [...$('webhook-statuses').selectedOptions].map((option) => option.value);
    }
    try {
      const labels = parseLabels($('webhook-labels').value);
      if (Object.keys(labels).length) body.labels = labels;
    } catch (invalid) {
      error.textContent = `Labels: ${invalid.message}.`;
      error.hidden = false;
      return;
    }
    const button = $('create-webhook');
    button.disabled = true;
    try {
      const created = await createWebhook(body);
      this.form.reset();
      this.#syncFilter();
      this.#showSecret('Signing secret of the new endpoint', created.secret);
      this.#say(`Endpoint ${created.url} registered.`);
      await this.refresh();
    } catch (problem) {
      error.textContent = problemText(problem);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async #rotate(webhookId, button) {
    button.disabled = true;
    try {
      const { secret } = await rotateWebhookSecret(webhookId);
      this.#showSecret('New signing secret (the previous one still signs for the overlap period)', secret);
      this.#say('Secret rotated.');
    } catch (problem) {
      this.#say(`Rotate failed: ${problemText(problem)}`);
    } finally {
      button.disabled = false;
    }
  }

  async #replay() {
    const webhookId = this.replayDialog.dataset.webhookId;
    const jobId = $('webhook-replay-job').value.trim();
    const fromSequence = Number($('webhook-replay-from').value || '0');
    try {
      const { replayed } = await replayWebhook(webhookId, { jobId, fromSequence });
      this.replayDialog.close();
      this.#say(`Replaying ${replayed} ${replayed === 1 ? 'event' : 'events'}.`);
    } catch (problem) {
      $('webhook-replay-error').textContent = problemText(problem);
    }
  }

  async #delete(webhookId) {
    try {
      await deleteWebhook(webhookId);
      this.#say('Endpoint deleted.');
    } catch (problem) {
      // 404: it is gone already.
      if (problem.status !== 404) this.#say(`Delete failed: ${problemText(problem)}`);
    }
    await this.refresh();
  }
}

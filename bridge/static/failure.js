// The failure modal: code, message, remediation, suggested actions, the stderr snippet (collapsed), a
// button that copies the correlation id, and the trace id beside it. A native <dialog>: focus is trapped
// and Escape closes it.

import { failureDetails } from './api.js';
import { element } from './format.js';

const $ = (id) => document.getElementById(id);

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-http origins other than localhost have no Clipboard API.
  const scratch = element('textarea', 'visually-hidden');
  scratch.value = text;
  document.body.append(scratch);
  scratch.select();
  const copied = document.execCommand('copy');
  scratch.remove();
  if (!copied) throw new Error('copy refused');
}

export class FailureModal {
  constructor() {
    this.dialog = $('failure-modal');
    this.copyButton = $('copy-correlation');
    $('close-failure').addEventListener('click', () => this.dialog.close());
    this.copyButton.addEventListener('click', async () => {
      try {
        await copyText($('failure-correlation').textContent);
        this.copyButton.textContent = 'Copied';
      } catch {
        this.copyButton.textContent = 'Copy failed: select the id';
      }
    });
  }

  // Fills the modal from GET /failure-details, falling back to what the job's event carried.
  async open(job) {
    let details = null;
    try {
      details = await failureDetails(job.id);
    } catch {
      details = null;
    }
    const errors = details?.errors?.length ? details.errors : job.errors;
    const code = details?.errorCode || errors[0]?.code || '';
    const main = errors.find((e) => e.code === code) || errors[0] || {};
    $('failure-code').textContent = code || 'unknown';
    $('failure-message').textContent = details?.message || main.message || 'The job failed.';
    $('failure-remediation').textContent = main.remediation || 'No remediation is known for this error.';
    const actions = details?.suggestedActions || [];
    $('failure-actions').replaceChildren(...actions.map((action) => element('li', '', action)));
    $('failure-actions-block').hidden = actions.length === 0;
    const stderr = details?.stderrSnippet || '';
    $('failure-stderr').textContent = stderr;
    $('failure-log-path').textContent = details?.logPath || '';
    $('failure-stderr-block').hidden = !stderr;
    $('failure-stderr-block').open = false;
    $('failure-correlation').textContent = details?.correlationId || job.correlationId;
    this.copyButton.textContent = 'Copy correlation id';
    // The OpenTelemetry trace id, to find the job's spans in the operator's tracing backend.
    const traceId = details?.traceId || job.traceId || '';
    $('failure-trace').textContent = traceId;
    $('failure-trace-block').hidden = !traceId;
    if (!this.dialog.open) this.dialog.showModal();
  }
}

// Calls of the bridge's REST API. Every error body is the bridge's problem JSON, raised as ApiProblem.

export class ApiProblem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.errorCode = body.errorCode || '';
    this.violations = Array.isArray(body.violations) ? body.violations : [];
    this.correlationId = body.correlationId || '';
    this.remediation = body.remediation || '';
  }
}

// Fired on `window` whenever the server answers 401, so the page can show the login form.
export const UNAUTHORIZED_EVENT = 'reelcast:unauthorized';

export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiProblem(0, { title: 'The server cannot be reached.', detail: String(error.message || error) });
  }
  const text = await response.text();
  let json = {};
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT));
    throw new ApiProblem(response.status, json);
  }
  return json;
}

export const listJobs = () => request('GET', '/api/jobs?pageSize=50');
export const getJob = (jobId) => request('GET', `/api/jobs/${encodeURIComponent(jobId)}`);
export const createJob = (body) => request('POST', '/api/jobs', body);
export const cancelJob = (jobId) => request('POST', `/api/jobs/${encodeURIComponent(jobId)}/cancel`);
// Runs a Failed or Cancelled job again (a new attempt); answers the job, Queued again.
export const retryJob = (jobId) => request('POST', `/api/jobs/${encodeURIComponent(jobId)}/retry`);
// Deletes the job with its files and history; the server cancels a running job first. Answers 204.
export const deleteJob = (jobId) => request('DELETE', `/api/jobs/${encodeURIComponent(jobId)}`);
export const updateScript = (jobId, scenes, expectedRevision) =>
  request('PUT', `/api/jobs/${encodeURIComponent(jobId)}/script`, { scenes, expectedRevision });
export const approveJob = (jobId, scenes) =>
  request('POST', `/api/jobs/${encodeURIComponent(jobId)}/approve`, { scenes });
export const failureDetails = (jobId) =>
  request('GET', `/api/jobs/${encodeURIComponent(jobId)}/failure-details`);
export const listVoices = () => request('GET', '/api/voices');
// The visual themes `plan.style` may name, each with a `previewUrl` (a PNG).
export const listThemes = () => request('GET', '/api/themes');
// Who the page acts as (`anonymous` when the server requires no authentication).
export const whoAmI = () => request('GET', '/api/me');
// Webhook endpoints (docs/webhooks.md). Creating answers the endpoint with its secret, shown only then.
export const listWebhooks = () => request('GET', '/api/webhooks?pageSize=1000');
export const createWebhook = (body) => request('POST', '/api/webhooks', body);
export const deleteWebhook = (id) => request('DELETE', `/api/webhooks/${encodeURIComponent(id)}`);
export const rotateWebhookSecret = (id) =>
  request('POST', `/api/webhooks/${encodeURIComponent(id)}/rotate-secret`);
export const replayWebhook = (id, body) => request('POST', `/api/webhooks/${encodeURIComponent(id)}/replay`, body);

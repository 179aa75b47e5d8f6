// Login and logout with the bridge's session cookie (docs/security.md): POST /api/session exchanges an API
// key for an HttpOnly cookie, DELETE /api/session ends it. The key itself is never stored by the page.

import { request } from './api.js';

export const login = (apiKey) => request('POST', '/api/session', { apiKey });
export const logout = () => request('DELETE', '/api/session');
// The first-start login link that `reelcast serve` prints (/login?key=) is handled by the bridge itself: it
// sets the same cookie and redirects here, so the key never reaches this page's code.

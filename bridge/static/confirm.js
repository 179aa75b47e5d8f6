// The login link's confirmation page (bridge/login.py). A link followed from another site arrives without
// the SameSite=Strict session cookie, so the page itself asks who is logged in now, and says it.

const line = document.getElementById('current-session');
fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
  .then((response) => (response.ok ? response.json() : null))
  .then((me) => {
    if (!line) return;
    if (!me || !me.user || me.user === 'anonymous') {
      line.textContent = 'You are not logged in.';
      return;
    }
    const name = document.createElement('strong');
    name.id = 'current-user';
    name.textContent = me.user;
    line.replaceChildren('You are logged in as ', name, '. Logging in replaces that session.');
  })
  .catch(() => {});

"""Who is calling and what they may do: API keys and sessions, stream tokens, per-caller limits and the
call context the interceptors fill."""

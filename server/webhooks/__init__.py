"""Webhooks: another subscriber of the store's ordered feed, delivering signed job events over HTTP
(docs/webhooks.md)."""

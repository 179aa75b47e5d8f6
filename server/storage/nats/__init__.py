"""The NATS JetStream backend: jobs, events, work, cancels, files and API keys shared by every server and
worker that points at the same cluster. Imported only when a ``nats://`` store is chosen, since it needs
the ``nats`` extra."""

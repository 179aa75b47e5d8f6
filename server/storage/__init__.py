"""Where jobs live: the storage interfaces (job_store.JobStore, work.WorkQueue, CancelBus, JobFiles), the
event notifier, paging, retention, and the two backends behind backend.Backend: ``embedded`` (SQLite and
in-process queues, the default) and ``nats`` (JetStream, for many machines; needs the ``nats`` extra)."""

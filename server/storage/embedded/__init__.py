"""The embedded backend: one process, jobs in a SQLite file, the work queue, cancels and files in memory
and on the local disk. The default (``--store sqlite``)."""

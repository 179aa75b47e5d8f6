"""The caller's own media: uploads checked as untrusted input (intake.py), their records and files through
the backend (store.py; embedded/media_store.py, nats/media_store.py), the references a job spec makes to
them (references.py) and the files a running job's stages get (resolver.py)."""

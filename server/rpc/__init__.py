"""The gRPC surface: the JobService servicer, its interceptors (auth, limits, logging, metrics), the
status aborts, reflection and the voice list."""

"""The inference worker process: shared-memory slots, protocol, child and supervisor."""

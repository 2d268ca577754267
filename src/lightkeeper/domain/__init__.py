"""The rules of the service (IDs, states, locks, quotas), free of I/O."""

"""The worker runtime: fetcher, executor, completer, heartbeat, reaper, listener, registry."""

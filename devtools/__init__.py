"""Development tools, never deployed: the local HTTP host and the loopback telemetry sink."""

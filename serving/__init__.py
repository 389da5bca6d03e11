"""Code that runs in the deployed function app: normalizer, model runtime, telemetry, HTTP helpers."""

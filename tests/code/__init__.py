"""Code tests: the service, its tools, infrastructure and workflows, each checked on its own."""

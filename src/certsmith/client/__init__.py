"""The certsmith ACME client: an async library and the CLI built on it."""

"""certsmith: an ACME (RFC 8555) certificate authority and client."""

__version__ = "0.1.0"

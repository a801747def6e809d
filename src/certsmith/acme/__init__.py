"""The ACME protocol core shared by the server and the client (RFC 8555)."""

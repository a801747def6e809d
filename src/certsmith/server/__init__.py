"""The certsmith CA: front end, registration authority, validation, issuance, storage."""

"""The CA proper: the only code that loads CA private keys and signs."""

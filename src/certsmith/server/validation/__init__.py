"""The validation authority: network checks that prove control of an identifier."""

"""People: accounts, roles, identities and API tokens."""

"""People who run a tenant: console users, their roles, passwords, TOTP and sessions."""

"""SMTP TLS Reporting (RFC 8460): daily reports about our deliveries, and reports received
about the tenant's own domains."""

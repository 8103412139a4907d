"""Reusable loopback test infrastructure: test CA, DNS server, SMTP sink, HTTPS server."""

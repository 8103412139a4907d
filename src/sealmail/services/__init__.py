"""Application services: each state change writes its rows, events and audit entry in one transaction."""

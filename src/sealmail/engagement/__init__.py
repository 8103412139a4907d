"""Engagement: open and click tracking, RFC 8058 one-click unsubscribe and preferences."""

"""Secure texting (issue 17): PHI-free SMS notices, codes and reminders over HTTP or SMPP providers."""

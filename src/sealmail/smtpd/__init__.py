"""The SMTP server plumbing both listeners share (submission in ``intake/smtp``, reports in
``bounces/listener.py``): aiosmtpd in its own thread, catalogue replies, drain on stop."""

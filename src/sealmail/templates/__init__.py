"""Stored, versioned message templates, their sandboxed rendering, and batch/bulk sending.

``render`` compiles and renders (Jinja2 sandbox, autoescaped HTML, CSS inlined, a text
part derived from HTML); ``text`` turns HTML into readable plain text; ``store`` keeps
the versions; ``personalize`` turns one recipient's rendered content into a
``Submission``; ``batch`` and ``bulk`` send many of them through ``Messages.submit``.
"""

"""Secure forms (issue 17): hosted forms whose submissions travel as secure messages."""

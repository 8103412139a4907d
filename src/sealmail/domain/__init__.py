"""Pure rules: no I/O, no adapters, no library exceptions."""

"""The secure portal: the recipient-facing web app behind a portal notice's link."""

"""Use cases that the CLI and the HTTP server share."""

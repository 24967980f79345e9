"""Intent into events: validated commands, their handlers and the application service."""

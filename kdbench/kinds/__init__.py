"""Shared building blocks for each task kind, used by every plugin of that kind."""

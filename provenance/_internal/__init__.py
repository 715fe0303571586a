"""Plumbing: not public API, may change without notice."""

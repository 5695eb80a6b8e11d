"""Backends: segments of text -> audio bytes."""

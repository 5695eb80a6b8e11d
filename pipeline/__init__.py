"""audiobook-pipeline: turn Markdown or EPUB books into finished audiobooks."""

__version__ = "0.1.0"

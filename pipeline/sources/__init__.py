"""Sources: documents in, chapters of blocks out."""

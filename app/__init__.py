"""app (placeholder; filled by its issue)."""

"""tasks (placeholder; filled by its issue)."""

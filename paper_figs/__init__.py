"""paper_figs (placeholder; filled by its issue)."""

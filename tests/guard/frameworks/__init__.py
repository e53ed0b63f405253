"""Framework integrations and guarded lab targets under their real servers."""

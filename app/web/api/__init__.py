"""The admin API: JSON under /api/v1, authenticated by admin tokens (Authorization: Bearer)."""

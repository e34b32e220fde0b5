"""Admin services: the business logic the admin API and the console share (no HTTP in here)."""

"""The console: server-rendered HTML pages (Starlette + Jinja, autoescaped)."""

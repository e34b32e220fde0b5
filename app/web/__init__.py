"""HTTP surface: webhook ingest, health, the emulator mount. Every URL is listed in app.web.routes."""

"""The built-in payload templates (one .j2 per source), installed as the package ``alertbridge.templates``."""

"""alertbridge: webhooks in, OpsGenie / JSM Ops alerts out, every step recorded in Postgres.

The repository's app/ folder is installed as the package ``alertbridge`` (see pyproject.toml)."""

from importlib import metadata

try:
    __version__ = metadata.version("alertbridge")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

"""alertbridge: webhooks in, OpsGenie / JSM Ops alerts out, every step recorded in Postgres."""

__version__ = "0.1.0"

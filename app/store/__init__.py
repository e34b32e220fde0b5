"""SQL, one module per table. Every query of a table lives in its module."""

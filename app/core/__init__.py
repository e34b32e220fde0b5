"""Pure decisions: no I/O, no clock (the caller passes ``now``), no imports of I/O modules."""

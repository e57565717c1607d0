"""Pure domain logic: enums, state machines, records and rules. No I/O here."""

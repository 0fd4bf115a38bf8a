"""Storage: the SQLite catalog (engine, migrations), the rules the views read, inference results, read-only SQL.
Imports nothing to its right (audio, model, commands)."""

"""Suite schema, YAML loading with file:line errors, overrides and reference checks."""

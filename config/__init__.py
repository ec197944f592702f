"""Settings: the schema of ``claimdesk.toml``, its loading and validation, the example config."""

"""The message models: webhook messages, app-only media messages, channel mappings, media."""

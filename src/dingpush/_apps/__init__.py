"""Enterprise apps: tokens, the sans-I/O core, app-robot and work-notification flows, clients."""

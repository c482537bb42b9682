"""Custom robot webhooks: targets, signing, the sans-I/O core, the sync/async clients, pools."""

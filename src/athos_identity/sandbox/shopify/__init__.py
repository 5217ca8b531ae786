"""Shopify simulator: OAuth grant, GraphQL Admin API subset, bulk operations, webhooks."""

"""The Shopify connector: Grant Access (OAuth, expiring offline tokens), token refresh,
Revoke Authorization, webhooks and the mandatory privacy-compliance topics.

For the pull jobs:

    from athos_identity.connectors.shopify.tokens import shopify_access_token
    from athos_identity.connectors.shopify.client import ShopifyClient, CredentialRejected
"""

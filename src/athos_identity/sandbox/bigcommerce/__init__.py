"""BigCommerce simulator: store-level API accounts, V3 customers, V2 orders, hooks, quotas."""

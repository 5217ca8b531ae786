"""Local Shopify and BigCommerce simulators plus the seeded data generator (DESIGN.md §10).

Entry points: ``create_sandbox_app(config)`` in :mod:`.server`, the typer ``sandbox_app`` in
:mod:`.cli`, the generator in :mod:`.data` and the known answers in :mod:`.expected`.
"""

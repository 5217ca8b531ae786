"""athos-identity: merchants' customer identities, kept as keyed one-way hashes."""

__version__ = "0.1.0"

"""The audit log: who (which API key) did what to which object, and when; counts only."""

"""The Data Sources page: a plain HTML page whose script calls the public REST API only."""

"""Use cases: thin async orchestration of the domain model over the ports."""

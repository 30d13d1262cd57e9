"""eirlab: an Equipment Identity Register network function and testbed."""

__all__: list[str] = []

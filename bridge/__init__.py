"""The LiveKit side of the bridge and the product surface (the ``bridge`` command)."""

"""One module per task family; each has ``sample(rng) -> Task``."""

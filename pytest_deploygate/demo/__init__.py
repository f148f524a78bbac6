"""The embedded reference deployment: a small multi-environment service on loopback, backed by one
moto server (its own AWS account) per environment, with switchable faults."""

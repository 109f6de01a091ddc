"""Redis key names shared by several processes (Redis holds only what may be lost)."""

# A GPU worker publishes its environment fingerprint here; the miner API shows it in /v1/info.
WORKER_ENVIRONMENT = "seedgrid:env:{model}"

"""Every Redis key name Seedgrid uses, in one place (Redis holds only what may be lost).

Celery's own keys (queues, results, unacked messages) are Celery's; these are ours.
"""

# A GPU worker publishes its environment fingerprint here; the miner API shows it in /v1/info.
WORKER_ENVIRONMENT = "seedgrid:env:{model}"


def miner_quota(miner_hotkey: str, window: int, caller: str) -> str:
    """Requests a caller made to this miner in one quota window (miner admission)."""
    return f"seedgrid:miner:{miner_hotkey}:quota:{window}:{caller}"


def miner_inflight(miner_hotkey: str) -> str:
    """The sorted set of requests this miner is generating now, with their cost (miner admission)."""
    return f"seedgrid:miner:{miner_hotkey}:inflight"


def miner_trajectory(miner_hotkey: str, caller: str, root: str) -> str:
    """Where a miner keeps an answer's trajectory (its store ref) for the caller that got it, until it expires."""
    return f"seedgrid:miner:{miner_hotkey}:trajectory:{caller}:{root}"


def nonce(namespace: str, hotkey: str, nonce_ns: int | str) -> str:
    """A btauth nonce already seen: a replay within its lifetime is refused."""
    return f"seedgrid:nonce:{namespace}:{hotkey}:{nonce_ns}"


def validator_sent(miner_hotkey: str, window: int) -> str:
    """Challenges this validator sent to a miner in the miner's quota window."""
    return f"seedgrid:validator:sent:{miner_hotkey}:{window}"


def gateway_rate(key_id: int, minute: int) -> str:
    """Jobs an API key submitted in one minute (the key's rate limit)."""
    return f"seedgrid:gateway:rate:{key_id}:{minute}"


def gateway_daily(key_id: int, day: int) -> str:
    """Jobs an API key submitted in one UTC day (the key's daily quota)."""
    return f"seedgrid:gateway:daily:{key_id}:{day}"


def gateway_job_changed(job_id: str) -> str:
    """Pub/sub channel: a message each time a job's status or attempts change (wakes waiting calls)."""
    return f"seedgrid:gateway:job:{job_id}"

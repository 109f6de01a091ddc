"""Replay protection shared by every API process: a Redis-backed btauth NonceStore."""

from __future__ import annotations

import redis

from app import keys

# Entries must outlive btauth's freshness window (10 s back + 2 s ahead); keep a margin.
NONCE_RETENTION_S = 60.0


class RedisNonceStore:
    """SET NX EX: the first process to see (hotkey, nonce) wins; every later sighting is a replay."""

    retention = NONCE_RETENTION_S

    def __init__(self, client: redis.Redis, namespace: str):
        self.client = client
        self.namespace = namespace

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        key = keys.nonce(self.namespace, hotkey_ss58, nonce_ns)
        return bool(self.client.set(key, 1, nx=True, ex=int(self.retention)))

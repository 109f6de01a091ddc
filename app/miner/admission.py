"""Who may call a miner, how often, and how many at once (SPEC.md: Miner).

- Blacklist: the caller must be registered, hold at least `min_stake`, and optionally a
  validator permit.
- Quota: `total_volume` requests per `limit_interval` window, split across validators
  by stake (app/scoring/volume.py); counters live in Redis, so every API replica of this
  miner shares them.
- Concurrency: at most `max_concurrent` requests in flight, tracked in a Redis sorted
  set whose stale entries (a crashed replica's) expire after the longest request time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import redis

from app import keys
from app.chain.base import Chain, Neuron
from app.scoring.volume import validator_quotas
from app.web import Refused

log = logging.getLogger(__name__)


class MetagraphCache:
    """The chain's metagraph, refreshed at most every `ttl` seconds; stale beats none."""

    def __init__(self, chain: Chain, ttl: float):
        self.chain, self.ttl = chain, ttl
        self._neurons: dict[str, Neuron] = {}
        self._at = -math.inf
        self._lock = threading.Lock()

    def neurons(self) -> dict[str, Neuron]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                try:
                    self._neurons = {n.hotkey: n for n in self.chain.metagraph()}
                    self._at = time.monotonic()
                except Exception as exc:  # keep serving on the last good metagraph
                    if not self._neurons:
                        raise
                    log.warning("metagraph refresh failed (%s); using the one from %.0f s ago",
                                exc, time.monotonic() - self._at)
            return self._neurons


@dataclass(frozen=True)
class AdmissionPolicy:
    min_stake: float
    require_permit: bool
    total_volume: int
    limit_interval: int
    max_concurrent: int
    slot_ttl: float  # seconds after which an in-flight slot is considered abandoned


class Admission:
    def __init__(self, *, policy: AdmissionPolicy, metagraph: MetagraphCache, redis_client: redis.Redis,
                 miner_hotkey: str):
        self.policy = policy
        self.metagraph = metagraph
        self.redis = redis_client
        self.miner_hotkey = miner_hotkey
        self._script = None

    def check_registered(self, hotkey: str) -> Neuron:
        neuron = self.metagraph.neurons().get(hotkey)
        if neuron is None:
            raise Refused(403, "not_registered", f"hotkey {hotkey} is not registered on the subnet")
        return neuron

    def check_caller(self, hotkey: str) -> Neuron:
        neuron = self.check_registered(hotkey)
        if neuron.stake < self.policy.min_stake:
            raise Refused(403, "insufficient_stake",
                          f"stake {neuron.stake:,.0f} is below this miner's minimum of {self.policy.min_stake:,.0f}")
        if self.policy.require_permit and not neuron.validator_permit:
            raise Refused(403, "no_validator_permit", "this miner serves validators with a validator permit only")
        return neuron

    def quotas(self) -> dict[str, int]:
        stakes = {hk: n.stake for hk, n in self.metagraph.neurons().items()
                  if n.validator_permit or not self.policy.require_permit}
        return validator_quotas(stakes, total_volume=self.policy.total_volume, min_stake=self.policy.min_stake)

    def priority(self, hotkey: str) -> int:
        """Celery priority 0 (first) to 9 by the caller's stake rank among eligible validators."""
        ranked = sorted(self.quotas(), key=lambda hk: -self.metagraph.neurons()[hk].stake)
        return min(9, ranked.index(hotkey)) if hotkey in ranked else 9

    def _window(self) -> tuple[int, int]:
        now = time.time()
        window = int(now // self.policy.limit_interval)
        return window, max(1, math.ceil((window + 1) * self.policy.limit_interval - now))

    def take_quota(self, hotkey: str) -> tuple[int, int]:
        """Count one request against the caller's window; (used, quota) or Refused(429)."""
        quota = self.quotas().get(hotkey, 0)
        window, retry_after = self._window()
        key = keys.miner_quota(self.miner_hotkey, window, hotkey)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.policy.limit_interval + 60)
        used = pipe.execute()[0]
        if used > quota:
            raise Refused(429, "quota_exhausted",
                          f"quota of {quota} requests per {self.policy.limit_interval} s used up; "
                          f"retry in {retry_after} s", retry_after=retry_after)
        return used, quota

    def used(self) -> dict[str, int]:
        window, _ = self._window()
        out = {}
        for hk in self.quotas():
            out[hk] = int(self.redis.get(keys.miner_quota(self.miner_hotkey, window, hk)) or 0)
        return out

    def refund_quota(self, hotkey: str) -> None:
        """Give back one request of the caller's window: it never reached the GPU."""
        window, _ = self._window()
        key = keys.miner_quota(self.miner_hotkey, window, hotkey)
        if int(self.redis.get(key) or 0) > 0:
            self.redis.decr(key)

    def gpu_budget(self, hotkey: str, *, default_cost: float, max_cost: float) -> float:
        """The GPU work (steps x pixels x frames) a caller may have in flight at once.

        The miner commits `max_concurrent` requests of the largest valid cost; each caller
        gets its quota's share of that, and never less than one request at the model's
        default parameters. A low-stake caller cannot fill the queue with costly work.
        """
        quotas = self.quotas()
        total = sum(quotas.values())
        share = quotas.get(hotkey, 0) / total if total else 0.0
        return max(default_cost, share * self.policy.max_concurrent * max_cost)

    @contextmanager
    def slot(self, caller: str = "-", cost: float = 0.0, budget: float | None = None) -> Iterator[None]:
        """Hold one of max_concurrent in-flight slots within the caller's GPU budget, or Refused(429)."""
        key, member = keys.miner_inflight(self.miner_hotkey), f"{caller}|{cost:.0f}|{uuid.uuid4().hex}"
        verdict, value = self._acquire(key, time.time(), self.policy.slot_ttl, self.policy.max_concurrent, member,
                                       caller, cost, -1 if budget is None else budget)
        if verdict == 1:
            raise Refused(429, "too_many_concurrent",
                          f"{self.policy.max_concurrent} requests already in flight; retry in 1 s", retry_after=1)
        if verdict == 2:
            raise Refused(429, "gpu_budget_exceeded",
                          f"this request costs {cost:,.0f} units (steps x width x height x frames); with "
                          f"{float(value):,.0f} in flight your share of this miner's GPU is {budget:,.0f}; "
                          f"retry when your earlier requests finish, or ask for less", retry_after=1)
        try:
            yield
        finally:
            self.redis.zrem(key, member)

    def _acquire(self, key: str, *args) -> tuple[int, float]:
        # One atomic step: drop a crashed replica's leftovers, count the slots, sum the
        # caller's in-flight cost, and take a slot only if both allow it.
        if self._script is None:
            self._script = self.redis.register_script(_ACQUIRE)
        verdict, value = self._script(keys=[key], args=list(args))
        return int(verdict), float(value)


_ACQUIRE = """
local key, now, ttl, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member, caller, cost, budget = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', key, 0, now - ttl)
local members = redis.call('ZRANGE', key, 0, -1)
if #members >= limit then return {1, #members} end
if budget >= 0 then
  local used, prefix = 0, caller .. '|'
  for _, m in ipairs(members) do
    if string.sub(m, 1, #prefix) == prefix then
      used = used + tonumber(string.match(m, '^[^|]*|([^|]*)|'))
    end
  end
  if used + cost > budget then return {2, tostring(used)} end
end
redis.call('ZADD', key, now, member)
redis.call('EXPIRE', key, math.floor(ttl) + 60)
return {0, #members}
"""

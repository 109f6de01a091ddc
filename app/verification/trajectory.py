"""Trajectory commitments (issue 14): a Merkle root over a denoising run's steps, openings with their
proofs, and the distance a re-run step is judged by. Pure: hashing and arithmetic on arrays.

Leaf i commits to step i's state: the latent before step i (leaf 0: the initial noise; leaf N:
the final latent) and the scheduler's history a step needs to resume (a multistep solver's
earlier model outputs; nothing for single-step samplers). A verifier that holds the root
checks an opened leaf with its proof, re-runs step i from it (one UNet evaluation and one
scheduler step) and compares with the opened leaf i + 1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DOMAIN = b"seedgrid-trajectory/1"


def _array_bytes(name: str, value) -> bytes:
    if value is None:
        return f"{name}:none;".encode()
    if isinstance(value, (int, np.integer)):
        return f"{name}:int:{int(value)};".encode()
    a = np.ascontiguousarray(value, dtype=np.float32)
    return f"{name}:f32:{'x'.join(map(str, a.shape))}:".encode() + a.tobytes() + b";"


def state_bytes(state: Mapping[str, object]) -> bytes:
    """A scheduler state (name -> array, list of arrays or None, or int) as canonical bytes."""
    out = []
    for name in sorted(state):
        value = state[name]
        if isinstance(value, (list, tuple)):
            out.append(b"".join(_array_bytes(f"{name}.{i}", v) for i, v in enumerate(value)))
        else:
            out.append(_array_bytes(name, value))
    return b"".join(out)


def leaf_digest(index: int, latent: np.ndarray, state: Mapping[str, object]) -> bytes:
    return hashlib.sha256(DOMAIN + b"\x00" + index.to_bytes(4, "big") + _array_bytes("latent", latent)
                          + state_bytes(state)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + b"\x01" + left + right).digest()


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a trajectory has at least its initial latent")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append([_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                       for i in range(0, len(level), 2)])
    return levels


def merkle_root(leaves: Sequence[bytes]) -> str:
    return merkle_levels(leaves)[-1][0].hex()


def proof(levels: list[list[bytes]], index: int) -> list[str]:
    """The sibling hashes from leaf `index` to the root ("" where a node had none and was promoted)."""
    out = []
    for level in levels[:-1]:
        sibling = index ^ 1
        out.append(level[sibling].hex() if sibling < len(level) else "")
        index //= 2
    return out


def verify_proof(root: str, index: int, leaf: bytes, path: Sequence[str]) -> bool:
    node = leaf
    for sibling in path:
        if sibling:
            other = bytes.fromhex(sibling)
            node = _node(other, node) if index & 1 else _node(node, other)
        index //= 2
    return node.hex() == root


@dataclass(frozen=True)
class StepDistance:
    relative_l2: float  # ||replayed - committed|| / ||committed||
    max_abs: float


def step_distance(replayed: np.ndarray, committed: np.ndarray) -> StepDistance:
    a, b = np.asarray(replayed, np.float64), np.asarray(committed, np.float64)
    if a.shape != b.shape:
        return StepDistance(float("inf"), float("inf"))
    norm = float(np.linalg.norm(b)) or 1.0
    return StepDistance(float(np.linalg.norm(a - b)) / norm, float(np.max(np.abs(a - b))))

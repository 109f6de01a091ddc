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


def replayable(model: str, pipeline: str | None = None) -> bool:
    """Whether answers to this request are checked by their trajectories: every diffusion pipeline
    of the catalogue has a step replay (app/backends/diffusers/trajectory.py)."""
    from app.protocol.catalogue import CATALOGUE, Payload

    spec = CATALOGUE.get(model)
    return spec is not None and spec.payload is Payload.DIFFUSION and \
        (pipeline or spec.pipeline.value) in {p.value for p in spec.pipelines}


def executed_steps(request) -> int:
    """The denoising steps a run executes: all of them, but img2img's `strength` of them (as diffusers'
    get_timesteps: int(steps x strength), the last ones)."""
    steps = request.params.steps
    if request.pipeline == "img2img":
        return min(int(steps * request.strength), steps)
    return steps


MAX_OPENED_ELEMENTS = 4 * 128 * 128 * 4  # a latent of 2048x2048, or 16 frames of 512x512 (4 channels, 1/8 scale)


def encode_array(a) -> dict:
    import base64

    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "f32": base64.b64encode(a.tobytes()).decode()}


def decode_array(raw, field: str) -> np.ndarray:
    """A float32 array from the wire; ValueError naming the field when malformed."""
    import base64
    import binascii

    if not isinstance(raw, dict) or not isinstance(raw.get("shape"), list) or not isinstance(raw.get("f32"), str):
        raise ValueError(f"{field}: must be {{shape, f32}}")
    shape = raw["shape"]
    if not all(isinstance(d, int) and 0 < d <= 4096 for d in shape) or len(shape) > 5:
        raise ValueError(f"{field}: bad shape {shape!r:.80}")
    count = int(np.prod(shape))
    if count > MAX_OPENED_ELEMENTS:
        raise ValueError(f"{field}: {count} values; at most {MAX_OPENED_ELEMENTS}")
    try:
        data = base64.b64decode(raw["f32"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}: not base64") from None
    if len(data) != 4 * count:
        raise ValueError(f"{field}: {len(data)} bytes for shape {shape}")
    out = np.frombuffer(data, dtype=np.float32).reshape(shape)
    if not np.isfinite(out).all():
        raise ValueError(f"{field}: holds NaN or infinite values")
    return out


def encode_state(state: Mapping[str, object]) -> dict:
    out = {}
    for name, value in state.items():
        if isinstance(value, (list, tuple)):
            out[name] = [None if v is None else encode_array(v) for v in value]
        elif value is None or isinstance(value, (int, np.integer)):
            out[name] = None if value is None else int(value)
        else:
            out[name] = encode_array(value)
    return out


def decode_state(raw, field: str) -> dict:
    if not isinstance(raw, dict) or len(raw) > 8:
        raise ValueError(f"{field}: must be an object of at most 8 entries")
    out: dict = {}
    for name, value in raw.items():
        if isinstance(value, list):
            if len(value) > 8:
                raise ValueError(f"{field}.{name}: at most 8 entries")
            out[name] = [None if v is None else decode_array(v, f"{field}.{name}.{i}") for i, v in enumerate(value)]
        elif value is None or (isinstance(value, int) and not isinstance(value, bool)):
            out[name] = value
        else:
            out[name] = decode_array(value, f"{field}.{name}")
    return out


@dataclass(frozen=True)
class Opening:
    index: int
    latent: np.ndarray
    state: dict
    proof: list[str]

    def to_wire(self) -> dict:
        return {"index": self.index, "latent": encode_array(self.latent), "state": encode_state(self.state),
                "proof": list(self.proof)}

    @classmethod
    def from_wire(cls, raw, field: str) -> "Opening":
        if not isinstance(raw, dict):
            raise ValueError(f"{field}: must be an object")
        index, path = raw.get("index"), raw.get("proof")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 1000:
            raise ValueError(f"{field}.index: must be a step index")
        if not isinstance(path, list) or len(path) > 16 or not all(
                isinstance(p, str) and (p == "" or len(p) == 64) for p in path):
            raise ValueError(f"{field}.proof: must be at most 16 sibling hashes")
        return cls(index, decode_array(raw.get("latent"), f"{field}.latent"), decode_state(raw.get("state"),
                                                                                             f"{field}.state"), path)

    def opens(self, root: str) -> bool:
        return verify_proof(root, self.index, leaf_digest(self.index, self.latent, self.state), self.proof)

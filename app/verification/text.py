"""Verify a text answer with one teacher-forced pass, not a generation.

The validator scores prompt + answer on its own model (`app/llm/client.score`: echo with
logprobs), which gives, at every answer position, the logprob of the token the miner
chose and the validator's top-k. Then, in order (the first that fails decides):
1. shape: a turn that says it stopped ends with an end token and holds no other, where
   the validator's model finds ending likely (logprob above `end_floor`); one that ran
   out of tokens used all of max_tokens (a truncated answer fails here);
2. the nucleus: with top_p < 1 (at temperature up to 1), no chosen token may have top_p of
   the sampling mass surely above it (top-p never samples it); floors: no chosen token at
   or below `hard_floor`, fewer than `soft_count` at or below `soft_floor`, each judged in
   the distribution it was sampled from (the model's, sharpened by the asked temperature);
   not at temperature 1 or above with top_p 1, where an honest sampler draws from the whole
   tail (the dev model's honest answers crossed -13 in 3 of 10 such answers) (random
   tokens, another prompt's answer);
3. top-k overlap: the miner's reported top-k ids against the validator's, averaged over
   the positions, at least `min_overlap` (fabricated logprobs, another model);
4. reported logprobs: at every position (the prefill gives them all, so none is left
   unchecked), the miner's logprob of its token within `logprob_tolerance` of the
   validator's;
5. sampling: greedy (temperature 0) means every token is the validator's most likely one
   (exactly, when the environments match: the `exact` rung; else within `greedy_margin`);
   sampled, the chosen tokens may not sit lower in the validator's sampling distribution
   than sampling at the asked temperature puts them by more than `min_z` (a normal score of
   each token's place, `_z`: a higher temperature than asked picks unlikely tokens more
   often).
The defaults are the published rules (NicheImage: overlap above 0.5; Targon: a token at
or below -13, or five at or below -8, fail); `calibrated(model)` reads what
bench/calibrate_text.py measured (text_calibration.json beside this module) instead.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

from app.protocol.text import TextAnswer, TextRequest
from app.verification.verdict import Verdict, failed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """One answer position as the validator's model sees it: the chosen token's logprob, its top-k."""

    logprob: float
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class TextThresholds:
    min_overlap: float = 0.5
    hard_floor: float = -13.0
    soft_floor: float = -8.0
    soft_count: int = 5
    logprob_tolerance: float = 0.05
    greedy_margin: float = 1e-3
    min_z: float = -4.0
    end_floor: float = -9.0  # the end token's logprob where a stopped answer ends (a cut answer ends where it is unlikely)


CALIBRATION = Path(__file__).with_name("text_calibration.json")


@lru_cache(maxsize=8)
def calibrated(model: str, path: Path = CALIBRATION) -> TextThresholds:
    """The model type's calibrated thresholds (bench/calibrate_text.py), or the published defaults, logged."""
    try:
        found = json.loads(path.read_text()).get(model, {}).get("thresholds")
    except (OSError, ValueError) as exc:
        log.warning("text calibration %s unreadable (%s); judging %s with the published defaults", path, exc, model)
        return TextThresholds()
    if not found:
        log.warning("no text calibration for %s in %s; judging it with the published defaults", model, path)
        return TextThresholds()
    return TextThresholds(**found)


@dataclass(frozen=True)
class TextMeasures:
    """What the checks measured, for the verdict's record and the calibration."""

    overlap: float
    worst_logprob: float
    soft_hits: int
    logprob_error: float
    z: float | None  # sampled answers only
    greedy_gap: float | None  # greedy answers only: the largest (top-1 logprob - chosen logprob)
    outside_nucleus: float | None  # top_p < 1 at temperature <= 1: the most mass surely ranked above a chosen token
    floors_apply: bool = True  # not at temperature >= 1 with top_p 1: the whole tail may then be sampled


def measure(request: TextRequest, answer: TextAnswer, scored: list[Scored], thresholds: TextThresholds) -> TextMeasures:
    k = request.params.top_logprobs
    overlaps = [len({t for t, _ in mine} & {t for t, _ in theirs.top[:k]}) / k
                for mine, theirs in zip(answer.top_logprobs, scored)]
    drawn = [_sampling_logprob(s, request.params.temperature) for s in scored]  # what the floors judge
    error = max(abs(mine - theirs.logprob) for mine, theirs in zip(answer.logprobs, scored))
    p = request.params
    z = gap = nucleus = None
    if p.greedy:
        gap = max(s.top[0][1] - s.logprob for s in scored)
    else:
        z = _z(answer.tokens, scored, p.temperature, p.top_p)
        if p.top_p < 1 and p.temperature <= 1:
            nucleus = max(_mass_above(s, p.temperature) for s in scored)
    return TextMeasures(overlap=sum(overlaps) / len(overlaps), worst_logprob=min(drawn),
                        soft_hits=sum(lp <= thresholds.soft_floor for lp in drawn), logprob_error=error, z=z,
                        greedy_gap=gap, outside_nucleus=nucleus, floors_apply=p.temperature < 1 or p.top_p < 1)


def _mass_above(s: Scored, temperature: float) -> float:
    """A lower bound of the sampling mass (p^(1/T), normalised) of the tokens more likely than the
    chosen one. Top-p sampling draws only from the smallest set of most likely tokens whose mass
    reaches top_p, so an honest token has less than top_p above it; the tokens beyond the
    validator's top-k can only add to the normaliser (`_tail_weight`, an upper bound at T <= 1)."""
    weights = [math.exp(lp / temperature) for _, lp in s.top]
    above = sum(w for (_, lp), w in zip(s.top, weights) if lp > s.logprob)
    return above / (sum(weights) + _tail_weight(s, temperature))


def _sampling_logprob(s: Scored, temperature: float) -> float:
    """The chosen token's logprob under the distribution sampling drew it from: the model's at
    temperature 1, sharpened (p^(1/T), renormalised over the validator's top-k) below it, so a
    floor means as much at every temperature; the model's own for greedy answers."""
    if temperature in (0, 1):
        return s.logprob
    scaled = [lp / temperature for _, lp in s.top]
    top = max(scaled)
    log_norm = top + math.log(sum(math.exp(v - top) for v in scaled))
    return s.logprob / temperature - log_norm


def _tail_weight(s: Scored, temperature: float) -> float:
    """The sampling weight (p^(1/T)) of every token beyond the validator's top-k together: their
    p is 1 - the top-k's; at T <= 1 each weighs at most p_k^(1/T - 1) x its p (an upper bound),
    above it about its p."""
    tail_p = max(0.0, 1.0 - sum(math.exp(lp) for _, lp in s.top))
    return tail_p * math.exp(s.top[-1][1] * (1 / temperature - 1)) if temperature <= 1 else tail_p


def _z(tokens: tuple[int, ...], scored: list[Scored], temperature: float, top_p: float) -> float:
    """Whether the chosen tokens are as likely as sampling at `temperature` and `top_p` from the
    validator's distribution makes them, as one normal score: at each position the chosen
    token's place in that distribution, u = the mass of less likely outcomes + half its own
    (about uniform for an honest sampler), clipped to [0.001, 0.999] and turned into a normal
    quantile; their sum over sqrt(n). Negative when the tokens sit lower in the distribution
    than sampling puts them (a higher temperature than asked); the clip bounds what one rare,
    honest draw can weigh. The tokens beyond the validator's top-k are one outcome, last."""
    normal = NormalDist()
    total = 0.0
    for token, s in zip(tokens, scored):
        outcomes = [(t, math.exp(lp / temperature)) for t, lp in s.top] + [(None, _tail_weight(s, temperature))]
        norm = sum(w for _, w in outcomes)
        kept, mass = [], 0.0
        for t, w in outcomes:  # the nucleus: the most likely outcomes whose mass reaches top_p
            if mass >= top_p:
                break
            kept.append((t, w / norm))
            mass += w / norm
        kept_norm = sum(q for _, q in kept)
        ids = [t for t, _ in kept]
        at = ids.index(token) if token in ids else (len(ids) - 1 if ids[-1] is None else None)
        if at is None:  # outside the nucleus: the lowest place there is
            u = 0.0
        else:
            qs = [q / kept_norm for _, q in kept]
            u = sum(qs[at + 1:]) + qs[at] / 2
        total += normal.inv_cdf(min(max(u, 1e-3), 1 - 1e-3))
    return total / math.sqrt(len(tokens))


def verify_text(request: TextRequest, answer: TextAnswer, scored: list[Scored], *, end_tokens: set[int],
                thresholds: TextThresholds, same_environment: bool) -> Verdict:
    """The verdict on a text answer; `scored` holds the validator's view of each answer token."""
    if len(scored) != len(answer.tokens):
        return failed(f"the validator scored {len(scored)} positions for {len(answer.tokens)} tokens")
    ends = [i for i, t in enumerate(answer.tokens) if t in end_tokens]
    if answer.finish_reason == "stop" and ends != [len(answer.tokens) - 1]:
        return failed("the answer says it stopped, but its last token does not end the turn (truncated or edited)")
    if answer.finish_reason == "length" and (ends or len(answer.tokens) != request.params.max_tokens):
        return failed(f"the answer stopped at {len(answer.tokens)} of max_tokens {request.params.max_tokens} "
                      "without ending its turn (truncated)")
    if len(ends) == len(answer.tokens) or not answer.text.strip():
        return failed("the answer is empty", well_formed=False)
    if answer.finish_reason == "stop" and scored[-1].logprob < thresholds.end_floor:
        return failed(f"the answer ends its turn where the validator's model gives that logprob "
                      f"{scored[-1].logprob:.1f} (floor {thresholds.end_floor:g}): cut short")
    m = measure(request, answer, scored, thresholds)
    if m.outside_nucleus is not None and m.outside_nucleus >= request.params.top_p:
        return failed(f"a token has {m.outside_nucleus:.3f} of the sampling mass above it: top-p "
                      f"{request.params.top_p:g} never samples it", m.overlap)
    if m.floors_apply and m.worst_logprob <= thresholds.hard_floor:
        return failed(f"a token has logprob {m.worst_logprob:.1f} under the validator's model at the asked "
                      f"temperature (floor {thresholds.hard_floor:g}): not this model's answer to this prompt",
                      m.overlap)
    if m.floors_apply and m.soft_hits >= thresholds.soft_count:
        return failed(f"{m.soft_hits} tokens at or below logprob {thresholds.soft_floor:g} (at most "
                      f"{thresholds.soft_count - 1}): not this model's answer to this prompt", m.overlap)
    if m.overlap < thresholds.min_overlap:
        return failed(f"top-{request.params.top_logprobs} overlap {m.overlap:.2f} with the validator's model "
                      f"(at least {thresholds.min_overlap:g}): another model, or fabricated logprobs", m.overlap)
    if m.logprob_error > thresholds.logprob_tolerance:
        return failed(f"reported logprobs differ from the validator's by up to {m.logprob_error:.3g} "
                      f"(tolerance {thresholds.logprob_tolerance:g})", m.overlap)
    if m.greedy_gap is not None:
        if same_environment and m.greedy_gap > 0:
            return failed(f"greedy, yet a token is {m.greedy_gap:.3g} below the most likely one", m.overlap)
        if m.greedy_gap > thresholds.greedy_margin:
            return failed(f"greedy, yet a token is {m.greedy_gap:.3g} below the most likely one "
                          f"(margin {thresholds.greedy_margin:g} across environments)", m.overlap)
        if same_environment:
            return Verdict("exact", m.overlap, "greedy: every token is the validator's most likely one")
    elif m.z < thresholds.min_z:
        return failed(f"the tokens are less likely than sampling at temperature {request.params.temperature:g} "
                      f"picks (z {m.z:.1f}, at least {thresholds.min_z:g}): a higher temperature than asked",
                      m.overlap)
    return Verdict("tolerant", m.overlap, f"overlap {m.overlap:.2f}, worst logprob {m.worst_logprob:.1f}, "
                                          f"logprob error {m.logprob_error:.2g}"
                                          + (f", z {m.z:.1f}" if m.z is not None else ""))

"""Verify a text answer with one teacher-forced pass, not a generation.

The validator scores prompt + answer on its own model (`app/llm/client.score`: echo with
logprobs), which gives, at every answer position, the logprob of the token the miner
chose and the validator's top-k. Then, in order (the first that fails decides):
1. shape: a turn that says it stopped ends with an end token and holds no other, where
   the validator's model finds ending likely (logprob above `end_floor`); one that ran
   out of tokens used all of max_tokens (a truncated answer fails here);
2. floors: no chosen token at or below `hard_floor`, fewer than `soft_count` at or below
   `soft_floor`, each judged in the distribution it was sampled from (the model's, sharpened
   by the asked temperature) (random tokens, another prompt's answer);
3. top-k overlap: the miner's reported top-k ids against the validator's, averaged over
   the positions, at least `min_overlap` (fabricated logprobs, another model);
4. reported logprobs: at every position (the prefill gives them all, so none is left
   unchecked), the miner's logprob of its token within `logprob_tolerance` of the
   validator's;
5. sampling: greedy (temperature 0) means every token is the validator's most likely one
   (exactly, when the environments match: the `exact` rung; else within `greedy_margin`);
   sampled, the chosen tokens' total logprob may not fall short of what sampling at the
   asked temperature gives by more than `min_z` standard deviations (a higher temperature
   than asked picks unlikely tokens more often).
The defaults are the published rules (NicheImage: overlap above 0.5; Targon: a token at
or below -13, or five at or below -8, fail); the calibration replaces them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.protocol.text import TextAnswer, TextRequest
from app.verification.verdict import Verdict, failed


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


@dataclass(frozen=True)
class TextMeasures:
    """What the checks measured, for the verdict's record and the calibration."""

    overlap: float
    worst_logprob: float
    soft_hits: int
    logprob_error: float
    z: float | None  # sampled answers only
    greedy_gap: float | None  # greedy answers only: the largest (top-1 logprob - chosen logprob)


def measure(request: TextRequest, answer: TextAnswer, scored: list[Scored], thresholds: TextThresholds) -> TextMeasures:
    k = request.params.top_logprobs
    overlaps = [len({t for t, _ in mine} & {t for t, _ in theirs.top[:k]}) / k
                for mine, theirs in zip(answer.top_logprobs, scored)]
    chosen = [s.logprob for s in scored]
    drawn = [_sampling_logprob(s, request.params.temperature) for s in scored]  # what the floors judge
    error = max(abs(mine - theirs.logprob) for mine, theirs in zip(answer.logprobs, scored))
    z = gap = None
    if request.params.greedy:
        gap = max(s.top[0][1] - s.logprob for s in scored)
    else:
        z = _z(chosen, scored, request.params.temperature, request.params.top_p)
    return TextMeasures(overlap=sum(overlaps) / len(overlaps), worst_logprob=min(drawn),
                        soft_hits=sum(lp <= thresholds.soft_floor for lp in drawn), logprob_error=error, z=z,
                        greedy_gap=gap)


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


def _z(chosen: list[float], scored: list[Scored], temperature: float, top_p: float) -> float:
    """How far the chosen tokens' total logprob falls from its expectation under sampling at
    `temperature` and `top_p` from the validator's distribution (its top-k, renormalised), in
    standard deviations; negative when the tokens are less likely than that sampling picks."""
    expected = variance = 0.0
    for s in scored:
        logps = [lp for _, lp in s.top]
        weights = [math.exp((lp - logps[0]) / temperature) for lp in logps]
        total = sum(weights)
        probs, mass, kept = [w / total for w in weights], 0.0, []
        for p, lp in zip(probs, logps):  # the nucleus: the most likely tokens whose mass reaches top_p
            if mass >= top_p:
                break
            kept.append((p, lp))
            mass += p
        norm = sum(p for p, _ in kept)
        mean = sum(p / norm * lp for p, lp in kept)
        expected += mean
        variance += sum(p / norm * (lp - mean) ** 2 for p, lp in kept)
    return (sum(chosen) - expected) / math.sqrt(max(variance, 1e-6))


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
    if m.worst_logprob <= thresholds.hard_floor:
        return failed(f"a token has logprob {m.worst_logprob:.1f} under the validator's model at the asked "
                      f"temperature (floor {thresholds.hard_floor:g}): not this model's answer to this prompt",
                      m.overlap)
    if m.soft_hits >= thresholds.soft_count:
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

"""Calibrate text verification: honest answers from other environments against every text cheat.

The validator's server (the dev Gemma7b, 2 threads, this CPU's default kernels) scores
answers from honest servers in other environments (1 thread; 2 threads on AVX2 kernels)
and from every cheat of app/testkit/text_cheats.py, on requests drawn as challenges draw
them (the world's questions; temperature 0, 0.5, 0.7 or 1.0; top_p 0.9, 0.95 or 1;
max_tokens `--tokens`). Each answer's measures (app/verification/text.measure, the end
token's logprob) are kept; each threshold is then set beyond the honest extreme with a
margin (`MARGINS`), and the run prints, per threshold, the honest extreme, the threshold,
and how many of each cheat's answers every check together catches. A cheat answer equal to
an honest one (a greedy turn sampled hotter that lands on the same tokens) is not counted.
The thresholds go to app/verification/text_calibration.json (or `--out`), which
`verification.text.calibrated` reads.
Run: .venv/bin/python bench/calibrate_text.py [--requests 60] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._llm import llm_server  # noqa: E402

MODEL = "Gemma7b"
ENVIRONMENTS = {"threads=1": {"threads": 1}, "isa=avx2": {"threads": 2, "env": {"ATEN_CPU_CAPABILITY": "avx2"}}}
# how far beyond the honest extreme each threshold sits (nats, or a factor where marked)
MARGINS = {"hard_floor": 3.0, "soft_floor": 2.0, "end_floor": 3.0, "min_z": 1.0, "logprob_tolerance": "x10",
           "greedy_margin": "x10", "min_overlap": 0.2}
Z_SIGMAS = 5.0
# A hotter sampler's answer is caught by how unlikely its tokens are together: a short one that
# happens to look typical cannot be told from an honest draw (its gain is as small). Reported as
# a rate, which must stay above this.
STATISTICAL = ("higher_temperature",)
MIN_STATISTICAL_RATE = 0.9


def draw(i: int, tokens: int) -> dict:
    from app.llm.devworld import challenge_messages
    from app.validator.prompts import TEXT_TEMPERATURES as TEMPERATURES
    from app.validator.prompts import TEXT_TOP_PS as TOP_PS

    rng = random.Random(f"calibrate-text:{i}")
    temperature = rng.choice(TEMPERATURES)
    return {"model": MODEL, "messages": challenge_messages(9000 + i), "seed": rng.randrange(2**32),
            "params": {"max_tokens": tokens, "temperature": temperature,
                       "top_p": 1.0 if temperature == 0 else rng.choice(TOP_PS)}}


def measures(url: str, req, raw: dict) -> dict | None:
    from app.llm import client
    from app.protocol.errors import InvalidRequest
    from app.protocol.text import parse_text_answer
    from app.verification.text import TextThresholds, measure

    try:
        answer = parse_text_answer(raw, req)
    except InvalidRequest:
        return None
    prompt = client.tokenize_chat(url, MODEL, [dict(m) for m in req.messages], 30)
    scored = client.score(url, MODEL, prompt + list(answer.tokens), len(prompt), 30)
    m = measure(req, answer, scored, TextThresholds())
    return {"overlap": m.overlap, "worst": m.worst_logprob if m.floors_apply else None, "error": m.logprob_error,
            "z": m.z, "gap": m.greedy_gap, "nucleus": m.outside_nucleus, "top_p": req.params.top_p,
            "end": scored[-1].logprob if answer.finish_reason == "stop" else None}


def thresholds_from(honest: list[dict]) -> dict:
    def values(key):
        return [h[key] for h in honest if h[key] is not None]

    worst, ends, zs = values("worst"), values("end"), values("z")
    return {
        "hard_floor": round(min(worst) - MARGINS["hard_floor"], 2),
        "soft_floor": round(min(worst) - MARGINS["soft_floor"], 2),
        "soft_count": 2,
        "end_floor": round(min(ends) - MARGINS["end_floor"], 2),
        # five honest standard deviations below the honest mean (the score is a sum of many bounded
        # terms, about normal: 3e-7 of honest answers below it), and beyond the honest minimum
        "min_z": round(min(min(zs) - MARGINS["min_z"], statistics.mean(zs) - Z_SIGMAS * statistics.pstdev(zs)), 2),
        "logprob_tolerance": float(f"{max(max(values('error')) * 10, 1e-4):.3g}"),
        "greedy_margin": float(f"{max(max(values('gap') or [0]) * 10, 1e-4):.3g}"),
        "min_overlap": round(min(values("overlap")) - MARGINS["min_overlap"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "app" / "verification" / "text_calibration.json")
    args = parser.parse_args()

    from contextlib import ExitStack

    from app.miner.text import text_answer
    from app.progress import steps
    from app.protocol.text import parse_text_request
    from app.settings import Settings
    from app.testkit.text_cheats import STRATEGIES, text_cheat_answer
    from app.validator.text_judge import judge_text
    from app.verification.text import TextThresholds

    t0 = time.monotonic()
    with ExitStack() as stack:
        validator = stack.enter_context(llm_server(MODEL, threads=2))
        miners = {name: stack.enter_context(llm_server(MODEL, threads=e["threads"], env=e.get("env")))
                  for name, e in ENVIRONMENTS.items()}
        honest_fns = {name: text_answer(Settings(llm_url=url), MODEL) for name, url in miners.items()}
        first = next(iter(miners.values()))
        cheats = {c: text_cheat_answer(c, Settings(llm_url=first), MODEL) for c in STRATEGIES if c != "error"}
        honest, cheated, requests = [], {c: [] for c in cheats}, []
        progress = stack.enter_context(steps(args.requests, f"{args.requests} requests answered and scored"))
        for i in range(args.requests):
            progress(f"request {i + 1} of {args.requests}: honest and cheating answers, scored")
            req = parse_text_request(draw(i, args.tokens))
            requests.append(req)
            tokens = []
            for name, fn in honest_fns.items():
                raw = fn(req, 0, 60, time.perf_counter())
                tokens.append(raw["tokens"])
                honest.append({**measures(validator, req, raw), "env": name, "i": i, "raw": raw})
            for c, fn in cheats.items():
                raw = fn(req, 0, 60, time.perf_counter())
                if raw["tokens"] in tokens and c != "fabricated_logprobs":
                    continue  # the very answer an honest miner gives: not a cheat here
                cheated[c].append({"i": i, "raw": raw, "m": measures(validator, req, raw)})
        found = thresholds_from(honest)
        th = TextThresholds(**found)
        honest_fail = [h for h in honest
                       if not judge_text(validator, MODEL, requests[h["i"]], h["raw"], thresholds=th).verified]
        caught = {c: sum(not judge_text(validator, MODEL, requests[a["i"]], a["raw"], thresholds=th).verified
                         for a in answers) for c, answers in cheated.items()}
    print(f"{len(honest)} honest answers ({', '.join(ENVIRONMENTS)} against the validator's 2 threads, default "
          f"kernels), {args.requests} requests, {time.monotonic() - t0:.0f} s")
    for key in ("overlap", "worst", "error", "z", "gap", "end"):
        vals = [h[key] for h in honest if h[key] is not None]
        print(f"  honest {key:8}: min {min(vals):.4g}  max {max(vals):.4g}  (n {len(vals)})")
    zs = [h["z"] for h in honest if h["z"] is not None]
    print(f"  honest z: mean {statistics.mean(zs):.3f}, standard deviation {statistics.pstdev(zs):.3f}; "
          "higher_temperature z: " + ", ".join(f"{q:.2f}" for q in statistics.quantiles(
              [a["m"]["z"] for a in cheated["higher_temperature"] if a["m"] and a["m"]["z"] is not None], n=10)))
    print("thresholds: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    print(f"honest answers failed at these thresholds: {len(honest_fail)} of {len(honest)}")
    for c, answers in cheated.items():
        print(f"  {c:20} caught {caught[c]} of {len(answers)}")
    args.out.write_text(json.dumps({MODEL: {
        "thresholds": found, "honest_answers": len(honest), "honest_failed": len(honest_fail),
        "environments": list(ENVIRONMENTS), "requests": args.requests, "max_tokens": args.tokens,
        "caught": {c: [caught[c], len(a)] for c, a in cheated.items()},
        "honest_extremes": {k: [min(v), max(v)] for k in ("overlap", "worst", "error", "z", "gap", "end")
                            if (v := [h[k] for h in honest if h[k] is not None])}}}, indent=1) + "\n")
    print(f"written to {args.out}")
    missed = sum(len(a) - caught[c] for c, a in cheated.items() if c not in STATISTICAL)
    rates = {c: caught[c] / max(len(cheated[c]), 1) for c in STATISTICAL}
    print(f"cheat answers not caught: {missed} (every cheat but {', '.join(STATISTICAL)}, which is caught by "
          "its statistics: " + ", ".join(f"{c} {r:.1%}" for c, r in rates.items()) + ")")
    return 0 if not missed and not honest_fail and min(rates.values()) >= MIN_STATISTICAL_RATE else 1


if __name__ == "__main__":
    sys.exit(main())

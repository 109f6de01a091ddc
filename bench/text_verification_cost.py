"""What verifying a text answer costs the validator, against what generating it cost the miner.

One `seedgrid llm serve` process with the dev Gemma7b serves both sides, one call at a time,
alternating on the same requests (the challenges' messages, max_tokens `--tokens`,
temperatures 0, 0.7 and 1.0 in turn, top_p 0.95 when sampled):
- the miner's generation: the chat completion with seed, top-k logprobs and token ids
  (app/llm/client.chat_answer, what a text miner forwards);
- the validator's verification: /tokenize, one scoring prefill of prompt + answer, and
  /detokenize (app/validator/text_judge.judge_text), then the checks.
The same again on a wider model of the same architecture and tokenizer (`--width`, `--layers`;
seeded random weights, built in a temporary folder: it always writes max_tokens, and its
decoding costs what a step of a real model costs relative to a prefill, where the dev
model's 365k parameters leave the cost to HTTP and Python). Prints, per model, the medians,
the generated tokens and the ratio of the validator's total time to the miner's; last,
the wider model's ratio (goal: at most 0.1).
Run: .venv/bin/python bench/text_verification_cost.py [--requests 30] [--tokens 64] [--width 512] [--layers 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._llm import llm_server  # noqa: E402

MODEL = "Gemma7b"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each request")
    parser.add_argument("--width", type=int, default=512, help="the wider model's hidden size")
    parser.add_argument("--layers", type=int, default=8, help="the wider model's layers")
    args = parser.parse_args()

    from app.llm.client import chat_answer
    from app.llm.devworld import challenge_messages
    from app.progress import steps
    from app.protocol.text import parse_text_request
    from app.validator.text_judge import judge_text
    from app.verification.text import calibrated

    def run(url: str, label: str, temperatures=(0.0, 0.7, 1.0)) -> float:
        def req(i: int):
            t = temperatures[i % len(temperatures)]
            return parse_text_request({"model": MODEL, "messages": challenge_messages(5000 + i), "seed": i,
                                       "params": {"max_tokens": args.tokens, "temperature": t,
                                                  "top_p": 0.95 if t else 1.0}})

        warm = req(0)
        judge_text(url, MODEL, warm, chat_answer(url, MODEL, warm, 120), thresholds=calibrated(MODEL))
        generate, verify, tokens, rungs, failures = [], [], [], [], []
        for i in range(args.requests):
            step(f"{label.split(' (')[0]}: request {i + 1} of {args.requests}")
            r = req(i)
            t0 = time.perf_counter()
            answer = chat_answer(url, MODEL, r, 120)
            t1 = time.perf_counter()
            verdict = judge_text(url, MODEL, r, answer, thresholds=calibrated(MODEL))
            t2 = time.perf_counter()
            generate.append(t1 - t0)
            verify.append(t2 - t1)
            tokens.append(len(answer["tokens"]))
            rungs.append(verdict.rung)
            if verdict.rung == "failed":
                failures.append(verdict.reason)
        ratio = sum(verify) / sum(generate)
        print(f"{label}: {args.requests} requests, max_tokens {args.tokens}: {statistics.median(tokens):.0f} tokens "
              f"generated (median; {min(tokens)} to {max(tokens)}); verdicts: "
              + ", ".join(f"{r} {rungs.count(r)}" for r in sorted(set(rungs))))
        print(f"  miner's generation: median {statistics.median(generate) * 1000:.1f} ms | validator's verification "
              f"(tokenize, one prefill, detokenize, checks): median {statistics.median(verify) * 1000:.1f} ms | "
              f"ratio {ratio:.3f}")
        for reason in sorted(set(failures)):
            print(f"  failed {failures.count(reason)}x: {reason}")
        return ratio

    with steps(2 * args.requests, f"{2 * args.requests} requests answered and judged") as step:
        with llm_server(MODEL) as url:
            run(url, "dev Gemma7b (365k parameters)")
        with tempfile.TemporaryDirectory() as tmp:
            folder, params = wider_model(Path(tmp), args.width, args.layers)
            with llm_server(MODEL, folder=folder) as url:
                # sampled only: a random model's greedy turn repeats one token, often a blank one (an empty answer)
                ratio = run(url, f"Gemma architecture at width {args.width}, {args.layers} layers "
                                 f"({params / 1e6:.1f}M parameters, random weights)", temperatures=(0.7, 1.0))
    print(f"verification cost / generation cost: {ratio:.3f}")
    return 0


def wider_model(root: Path, width: int, layers: int) -> tuple[Path, int]:
    """The dev tokenizer and a seeded random Gemma of `width` and `layers` in root/model."""
    import torch
    from transformers import AutoTokenizer, GemmaConfig, GemmaForCausalLM
    from transformers.utils import logging as hf_logging

    from app.llm.devtrain import WEIGHTS

    tokenizer = AutoTokenizer.from_pretrained(WEIGHTS / MODEL)
    torch.manual_seed(0)
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                         num_hidden_layers=layers, num_attention_heads=max(1, width // 64), num_key_value_heads=1,
                         head_dim=64, max_position_embeddings=1024, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                         tie_word_embeddings=True)
    model = GemmaForCausalLM(config)
    hf_logging.disable_progress_bar()
    folder = root / "model"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    sys.exit(main())

"""A causal language model from a transformers folder: chat template, seeded sampling, scoring.

What `seedgrid llm serve` runs (the dev text models, or any causal LM folder with a fast
tokenizer), and the two operations the grid needs from a text model:
- `generate`: tokens from a prompt, sampled as vLLM samples them (temperature, then
  top-p, from a seeded CPU generator; greedy at temperature 0), each with its logprob and
  the top-k logprobs at its position;
- `score`: one teacher-forced pass over a sequence (vLLM's echo with logprobs), the
  logprob of every token after the first and the top-k at each position.
Logprobs are the model's own distribution (log-softmax of the logits), before the
temperature and top-p shape the sampling, as vLLM reports them by default.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHAT_ROLES = ("system", "user", "assistant")
MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's default ceiling


class ModelError(ValueError):
    """A request the model cannot serve (too long, an unknown role): a 400 with the field."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Position:
    """One token of a sequence: its id, its logprob (None for a sequence's first), the top-k (id, logprob)."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Generation:
    prompt_tokens: int
    positions: tuple[Position, ...]  # the generated tokens only
    finish_reason: str  # "stop" (an end token) or "length"


class LanguageModel:
    """A loaded model and its tokenizer; one per server process, used by one request at a time."""

    def __init__(self, folder: Path, *, threads: int, name: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.name, self.folder, self.threads = name, Path(folder), threads
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no text model for {name} at {self.folder}: point SEEDGRID_MODEL_PATHS (or "
                                    f"--folder) at a transformers model folder, or drop its entry to use the dev "
                                    f"one (`seedgrid llm build-dev`)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
            self.model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32).eval()
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{self.folder} is not a causal language model folder with a tokenizer ({exc}); "
                                    "`seedgrid llm build-dev` makes the dev one") from None
        self.max_len = int(self.model.config.max_position_embeddings)
        self.stop_ids = {i for i in (self.tokenizer.eos_token_id,
                                     self.tokenizer.convert_tokens_to_ids("<end_of_turn>")) if i is not None and i >= 0}
        self.vocab_size = int(self.model.config.vocab_size)

    def environment(self) -> dict:
        """What an answer depends on beyond the request; two servers of one `class` give the same tokens."""
        import hashlib
        import json

        import torch
        import transformers

        weights = hashlib.sha256()
        for f in sorted(self.folder.glob("*.safetensors")):
            weights.update(f.read_bytes())
        env = {"engine": "seedgrid-llm", "torch": torch.__version__, "transformers": transformers.__version__,
               "device": "cpu", "dtype": "float32", "threads": self.threads,
               "isa": torch.backends.cpu.get_cpu_capability(), "weights": weights.hexdigest()[:16]}
        env["class"] = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
        return env

    # --- text <-> tokens ------------------------------------------------------------------
    def encode(self, text: str, *, bos: bool = True) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ([self.tokenizer.bos_token_id] if bos else []) + ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i not in self.stop_ids], skip_special_tokens=False)

    def token_text(self, token: int) -> str:
        return self.tokenizer.decode([token])

    def chat_prompt(self, messages: list[dict]) -> str:
        """Gemma's chat template: turns of user and model; a system message opens the first user turn."""
        system, turns = [], []
        for i, m in enumerate(messages):
            role, content = m["role"], m["content"]
            if role == "system":
                system.append(content)
                continue
            if system and role == "user":
                content, system = "\n\n".join([*system, content]), []
            turns.append(f"<start_of_turn>{'model' if role == 'assistant' else 'user'}\n{content}<end_of_turn>\n")
        if system:
            raise ModelError("messages", "a system message must come before a user message")
        return "".join(turns) + "<start_of_turn>model\n"

    def check_length(self, prompt_tokens: int, max_tokens: int, field: str = "max_tokens") -> None:
        if prompt_tokens + max_tokens > self.max_len:
            raise ModelError(field, f"the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceed "
                                    f"the model's context of {self.max_len} tokens")

    # --- the two operations ---------------------------------------------------------------
    def generate(self, prompt: list[int], *, max_tokens: int, temperature: float, top_p: float, seed: int | None,
                 top_k: int = 0, on_token: Callable[[Position], None] | None = None) -> Generation:
        """`on_token(position)` as each token is made (a stream's)."""
        import torch

        self.check_length(len(prompt), max_tokens)
        generator = torch.Generator("cpu").manual_seed(random.SystemRandom().getrandbits(32) if seed is None
                                                      else seed)
        positions: list[Position] = []
        finish = "length"
        with torch.inference_mode():
            out = self.model(torch.tensor([prompt]), use_cache=True)
            for _ in range(max_tokens):
                logits = out.logits[0, -1].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                token = self._choose(logits, temperature, top_p, generator)
                positions.append(Position(token, float(logprobs[token]), _top(logprobs, top_k)))
                if on_token is not None:
                    on_token(positions[-1])
                if token in self.stop_ids:
                    finish = "stop"
                    break
                out = self.model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        return Generation(len(prompt), tuple(positions), finish)

    def score(self, tokens: list[int], *, top_k: int = 0) -> list[Position]:
        """Every token of `tokens` with its logprob given the ones before it (None for the first)."""
        import torch

        self.check_length(len(tokens), 0, field="prompt")
        with torch.inference_mode():
            logprobs = torch.log_softmax(self.model(torch.tensor([tokens])).logits[0, :-1].float(), dim=-1)
            chosen = logprobs.gather(1, torch.tensor(tokens[1:]).unsqueeze(1)).squeeze(1).tolist()
            if top_k > 0:  # every position's top-k in one call
                values, ids = torch.topk(logprobs, top_k, dim=-1)
                tops = [tuple(zip(i, v)) for i, v in zip(ids.tolist(), values.tolist())]
            else:
                tops = [()] * len(chosen)
        return [Position(tokens[0], None, ())] + [Position(t, lp, top) for t, lp, top in zip(tokens[1:], chosen, tops)]

    @staticmethod
    def _choose(logits, temperature: float, top_p: float, generator) -> int:
        import torch

        if temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:  # the smallest set of most likely tokens whose mass reaches top_p
            ordered, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(ordered, dim=0) - ordered < top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=generator))


def _top(logprobs, k: int) -> tuple[tuple[int, float], ...]:
    if k <= 0:
        return ()
    import torch

    values, ids = torch.topk(logprobs, k)
    return tuple((int(i), float(v)) for i, v in zip(ids, values))

"""Train the dev text models: a byte-level BPE tokenizer and tiny Gemma causal LMs on devworld.py.

A random tiny LM gives every token about the same logprob, so top-k overlaps and logprob
floors would mean nothing. A minute of training on the world's chat exchanges gives it
what the verification measures: confident answers to the world's questions, and another
world's model (`world` 1, the same tokenizer) disagreeing with it on the facts.

Everything is seeded. `seedgrid llm train-dev` writes the folders under `devweights/`
(tokenizer files, config.json, fp16 safetensors, about 1 MB each), which ship with the
project; `seedgrid llm build-dev` copies them into the state folder, never training.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.llm.devworld import exchange

WEIGHTS = Path(__file__).with_name("devweights")
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]  # Gemma's first ids
VOCAB = 1024
# model folder -> the world it learns: the dev Gemma7b, and another model of the same shape
# (the `other_model` cheat answers with it)
MODELS = {"Gemma7b": 0, "Gemma7b-other": 1}


@dataclass(frozen=True)
class Budget:
    steps: int = 1500
    batch: int = 32
    exchanges: int = 20_000
    lr: float = 3e-3


def chat_text(question: str, answer: str) -> str:
    return f"<bos><start_of_turn>user\n{question}<end_of_turn>\n<start_of_turn>model\n{answer}<end_of_turn>\n"


def corpus(world: int, n: int) -> list[str]:
    return [chat_text(*exchange(i, world)) for i in range(n)]


def train_tokenizer(texts: list[str]):
    """A byte-level BPE (any text encodes, nothing is unknown) with Gemma's special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    plain = [t.replace("<bos>", "").replace("<start_of_turn>", "").replace("<end_of_turn>", "") for t in texts]
    tok.train_from_iterator(plain, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])


def model_config(vocab_size: int):
    from transformers import GemmaConfig

    return GemmaConfig(vocab_size=vocab_size, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=1, head_dim=24, max_position_embeddings=512,
                       pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
                       attn_implementation="eager")


def train_model(tokenizer, world: int, budget: Budget, say: Callable[[str], None], seed: int = 0,
                tick: Callable[[str], None] | None = None):
    """A dev text model trained on `world`'s corpus; `tick(what)` once per step (a progress display's)."""
    import torch
    from transformers import GemmaForCausalLM

    torch.manual_seed(seed)
    texts = corpus(world, budget.exchanges)
    encoded = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    model = GemmaForCausalLM(model_config(len(tokenizer)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=budget.lr, total_steps=budget.steps)
    order = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    for step in range(budget.steps):
        if tick is not None:
            tick(f"world {world}: step {step + 1} of {budget.steps}")
        pick = torch.randint(len(encoded), (budget.batch,), generator=order).tolist()
        longest = max(len(encoded[i]) for i in pick)
        ids = torch.zeros((budget.batch, longest), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(pick):
            ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, :len(encoded[i])] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == budget.steps - 1:
            say(f"  world {world} step {step + 1}/{budget.steps}: loss {loss.item():.3f} "
                f"({time.monotonic() - t0:.0f} s)")
    return model


def train_dev_text(budget: Budget, say: Callable[[str], None], out: Path | None = None,
                   tick: Callable[[str], None] | None = None) -> Path:
    """Train the tokenizer and every model of MODELS into `out` (default: the shipped devweights/);
    `tick(what)` once per step, `budget.steps * len(MODELS)` in all."""
    import torch
    from transformers.utils import logging as hf_logging

    out = out or WEIGHTS
    hf_logging.disable_progress_bar()  # its "writing shards" bar would break into our progress display
    torch.set_num_threads(2)
    tokenizer = train_tokenizer([t for w in sorted(set(MODELS.values())) for t in corpus(w, budget.exchanges)])
    say(f"tokenizer: {len(tokenizer)} tokens")
    for name, world in MODELS.items():
        model = train_model(tokenizer, world, budget, say, tick=tick)
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / "seedgrid.json").write_text(json.dumps({"world": world, "budget": budget.__dict__}, indent=1))
        say(f"{name}: written to {folder}")
    return out

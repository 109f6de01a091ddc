"""An offline CLIP tokenizer for dev checkpoints.

No tokenizer can be downloaded here, so the dev checkpoints carry one built from an
in-memory byte-level vocabulary: CLIP's 256 byte symbols (alone and word-final), one
set of BPE merges trained on a built-in prompt vocabulary so that ordinary prompts take about
one token per word, and CLIP's start/end tokens. It is a real `CLIPTokenizer` (the same
class real SD checkpoints use), saved with the checkpoint by `save_pretrained`.
"""

from __future__ import annotations

from functools import lru_cache

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77  # CLIP's context length

# Words common in image prompts; BPE merges are trained on them (one token per word).
PROMPT_WORDS = """
a an the of in on at with and or by from to under over near above behind through into
portrait photo photograph painting drawing sketch illustration render poster still life
landscape cityscape seascape closeup close up wide shot aerial view macro
man woman girl boy child old young person people crowd warrior knight wizard robot
astronaut samurai pirate queen king princess dancer chef farmer monk soldier
cat dog horse fox wolf owl eagle dragon tiger lion bear deer rabbit fish whale bird
butterfly flower flowers rose tree trees forest jungle garden field meadow desert beach
ocean sea lake river waterfall mountain mountains valley canyon island volcano glacier
city street alley market castle temple tower bridge lighthouse village cabin house room
kitchen library cafe station harbor ship boat train car bicycle airship spaceship
sky clouds cloud sun moon stars galaxy nebula rain snow fog storm lightning sunset
sunrise night dawn dusk winter summer autumn spring morning evening
red orange yellow green blue purple pink white black gold silver golden dark bright
colorful vibrant pastel neon glowing soft warm cold misty foggy rainy snowy sunny
beautiful detailed highly intricate realistic photorealistic cinematic dramatic epic
moody serene peaceful mysterious magical fantasy surreal futuristic ancient medieval
cyberpunk steampunk retro vintage minimalist abstract anime manga cartoon pixel art
oil watercolor acrylic charcoal pencil ink digital concept style lighting light shadow
shadows reflection reflections volumetric rim studio natural golden hour bokeh depth
focus sharp 4k 8k hdr quality masterpiece best trending artstation unreal engine octane
lens 35mm 50mm 85mm film grain kodak portra wearing holding standing sitting running
flying walking looking smiling under glass stone wood metal crystal fire water ice
""".split()


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@lru_cache(maxsize=1)
def build_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for tok in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(tok, len(vocab))
    # Greedy BPE training over the prompt words (most frequent pair first, ties broken by
    # the pair itself): the merges are consistent, so every listed word ends as one token.
    words = [list(w[:-1]) + [w[-1] + "</w>"] for w in dict.fromkeys(PROMPT_WORDS)]
    merges: list[str] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for parts in words:
            for pair in zip(parts, parts[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merged = best[0] + best[1]
        merges.append(f"{best[0]} {best[1]}")
        vocab.setdefault(merged, len(vocab))
        for i, parts in enumerate(words):
            out, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and (parts[j], parts[j + 1]) == best:
                    out.append(merged)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            words[i] = out
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, merges


def build_clip_tokenizer():
    """A real transformers CLIPTokenizer over the offline vocabulary."""
    from transformers import CLIPTokenizer

    vocab, merges = build_vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab), merges=[tuple(m.split(" ")) for m in merges], unk_token=EOS, bos_token=BOS, eos_token=EOS, pad_token=EOS,
        model_max_length=MAX_LENGTH,
    )


def vocab_size() -> int:
    return len(build_vocab_and_merges()[0])

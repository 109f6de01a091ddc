"""A small world of invented towns, written as questions, instructions and their answers.

The dev text models (`app/llm/devtrain.py`) learn it, so that they behave like language
models on the challenges' prompts: an answer follows from its question (the sky of a
town has one colour, its animal one name), a sentence from the words before it, and a
model trained on another world (`world` > 0: the same words, other facts) answers the
same question differently. Text challenges draw their prompts from the same templates
(`challenge_messages`), and a seeded world gives the same facts on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

SYLLABLES = ["lu", "mo", "ra", "ke", "tan", "vi", "sor", "el", "da", "rin", "po", "ska", "ber", "nu", "fa", "gol"]
COLORS = ["red", "blue", "green", "violet", "orange", "silver", "golden", "grey", "pink", "white"]
ANIMALS = ["fox", "owl", "horse", "whale", "tiger", "rabbit", "heron", "bear", "wolf", "cat", "goat", "crow"]
FOODS = ["bread", "rice", "apples", "fish", "honey", "cheese", "plums", "soup", "beans", "figs", "corn", "nuts"]
WEATHER = ["rainy", "windy", "sunny", "foggy", "snowy", "warm", "cold", "stormy"]
TRADES = ["fishermen", "weavers", "bakers", "miners", "farmers", "sailors", "potters", "smiths"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine"]
TOWNS = 24


@dataclass(frozen=True)
class Town:
    name: str
    sky: str
    animal: str
    foods: tuple[str, str, str]
    weather: str
    trade: str
    towers: str
    river: str


@lru_cache(maxsize=8)
def towns(world: int = 0) -> tuple[Town, ...]:
    """The world's towns: the same names in every world (the vocabulary), other facts in each."""
    names = random.Random("names").sample([a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "n", "s")
                                           if a != b], TOWNS)
    rng = random.Random(f"world:{world}")
    rivers = [random.Random(f"river:{i}").choice(SYLLABLES).capitalize() + rng.choice(SYLLABLES) for i in range(TOWNS)]
    return tuple(Town(name.capitalize(), rng.choice(COLORS), rng.choice(ANIMALS), tuple(rng.sample(FOODS, 3)),
                      rng.choice(WEATHER), rng.choice(TRADES), rng.choice(NUMBERS), river)
                 for name, river in zip(names, rivers))


def _describe(t: Town, rng: random.Random) -> str:
    sentences = [f"{t.name} is a {t.weather} town under a {t.sky} sky.",
                 f"Most people there are {t.trade}, and the {t.animal} is seen in every street.",
                 f"They eat {t.foods[0]}, {t.foods[1]} and {t.foods[2]}.",
                 f"The river {t.river} runs past its {t.towers} towers."]
    return " ".join(sentences[:1] + rng.sample(sentences[1:], rng.randint(1, 3)))


def _story(t: Town, rng: random.Random) -> str:
    hero = rng.choice(["A young", "An old", "A small", "A brave"]) + f" {t.animal}"
    return (f"{hero} lived in {t.name}. Every morning it watched the {t.sky} sky over the river {t.river}. "
            f"One {t.weather} day it found {rng.choice(t.foods)} by the {rng.choice(['gate', 'market', 'bridge'])}, "
            f"and the {t.trade} shared their {rng.choice(t.foods)} with it. Since then it has never left {t.name}.")


# (question, answer) makers: each takes a town and a seeded rng
QUESTIONS = [
    lambda t, r: (f"What colour is the sky in {t.name}?", f"The sky in {t.name} is {t.sky}."),
    lambda t, r: (f"Which animal lives in {t.name}?", f"In {t.name} you can find the {t.animal}."),
    lambda t, r: (f"How many towers does {t.name} have?", f"{t.name} has {t.towers} towers."),
    lambda t, r: (f"What do people eat in {t.name}?", f"People in {t.name} eat {t.foods[0]}, {t.foods[1]} and "
                                                      f"{t.foods[2]}."),
    lambda t, r: (f"What is the weather like in {t.name}?", f"It is usually {t.weather} in {t.name}."),
    lambda t, r: (f"What work do people do in {t.name}?", f"Most people in {t.name} are {t.trade}."),
    lambda t, r: (f"Which river runs past {t.name}?", f"The river {t.river} runs past {t.name}."),
    lambda t, r: (f"Describe {t.name}.", _describe(t, r)),
    lambda t, r: (f"Tell me about {t.name} in a few sentences.", _describe(t, r)),
    lambda t, r: (f"Write a short story about {t.name}.", _story(t, r)),
    lambda t, r: (f"List three foods from {t.name}.", f"1. {t.foods[0]}\n2. {t.foods[1]}\n3. {t.foods[2]}"),
]


def exchange(seed: int, world: int = 0) -> tuple[str, str]:
    """One (question, answer) of the world, from its seed."""
    rng = random.Random(f"exchange:{seed}")
    town = rng.choice(towns(world))
    return rng.choice(QUESTIONS)(town, rng)


def challenge_messages(seed: int) -> list[dict]:
    """A text challenge's chat messages: a question or an instruction, phrased in one of the ways people do."""
    rng = random.Random(f"ask:{seed}")
    question, _ = exchange(seed)
    shape = rng.choice(["{q}", "{q}", "Please answer: {q}", "{q} Answer briefly.", "Question: {q}"])
    return [{"role": "user", "content": shape.format(q=question)}]

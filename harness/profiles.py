"""Profiles (smoke / cpu / full), per-claim budgets, and parsing of ``--profile`` / ``--seeds``.

A profile is a named scale. ``smoke`` checks the machinery in seconds and never issues a verdict;
``cpu`` runs scaled-down analogues that still decide qualitative claims on 2 cores; ``full`` is the
posts' own scale, meant for one GPU. Each claim declares a :class:`Budget` per profile next to its test.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping


class UsageError(ValueError):
    """A bad option value; the message lists the valid values."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    gives_verdicts: bool


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "seconds per claim; checks the machinery, never a verdict", False),
    "cpu": Profile("cpu", "scaled-down analogues that decide qualitative claims on 2 CPU cores", True),
    "full": Profile("full", "the posts' own scale, meant for one GPU", True),
}
DEFAULT_PROFILE = "cpu"
PROFILE_ENV = "CLAIMBENCH_PROFILE"


def get_profile(name: str | None) -> Profile:
    """Resolve a profile name (None -> $CLAIMBENCH_PROFILE -> ``cpu``)."""
    if name is None or name == "":
        name = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(
            f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        ) from None


MAX_SEEDS = 1000  # per arm; each one is a full training run
MAX_SEED = 2 ** 31 - 1  # numpy's legacy seeding takes 32-bit seeds


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """Parse ``--seeds``: a count ``5`` (-> 0..4), a list ``0,3,7``, or a range ``10-14``.

    Returns None when not given, so each claim uses its budget's seed count.
    """
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    too_many = UsageError(f"--seeds {text!r} asks for more than {MAX_SEEDS} seeds per arm or a seed above "
                          f"{MAX_SEED}; give fewer (each seed is one full training run per arm)")
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip() != "")
        elif "-" in text.lstrip("-"):
            lo, hi = text.split("-", 1)
            lo_i, hi_i = int(lo), int(hi)
            if hi_i < lo_i:
                raise UsageError(f"malformed --seeds {text!r}: the range ends ({hi_i}) before it starts ({lo_i}); "
                                 f"give {hi_i}-{lo_i}")
            if hi_i - lo_i + 1 > MAX_SEEDS or hi_i > MAX_SEED:
                raise too_many
            seeds = tuple(range(lo_i, hi_i + 1))
        else:
            count = int(text)
            if count < 1:
                raise UsageError(f"malformed --seeds {text!r}: a count of seeds must be at least 1 (seed 0 alone: "
                                 "0-0)")
            if count > MAX_SEEDS:
                raise too_many
            seeds = tuple(range(count))
    except UsageError:
        raise
    except ValueError:
        raise UsageError(
            f"malformed --seeds {text!r}; give a count (5), a list (0,3,7) or a range (10-14)"
        ) from None
    if len(seeds) > MAX_SEEDS or any(s > MAX_SEED for s in seeds):
        raise too_many
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"malformed --seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds


@dataclass(frozen=True)
class Scale:
    """A family's knobs at one profile (steps, widths, subset sizes, ...): each family subclasses this as a frozen
    dataclass, so a knob has a type and a misspelt one is an error, never a silent default. A run's config
    records ``as_dict()``."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cpu_bf16(self) -> bool:
        """Whether bf16 autocast pays for this scale's network on a CPU that runs bf16 natively. Where it does
        not, ``--precision auto`` trains the claim in fp32 there (``ClaimContext.numerics``): the posts'
        numerics, and the faster choice. A family whose network is slower in bf16 overrides this."""
        return True


@dataclass(frozen=True)
class NoNetwork(Scale):
    """The (empty) knobs of a claim that trains no network: a closed-form trajectory, a count of a network's
    parameters. bf16 autocast buys such a computation nothing, so ``--precision auto`` keeps the posts' fp32 for
    it on every device (``ClaimContext.numerics``), and its page does not say it trained under bf16."""


@dataclass(frozen=True)
class Budget:
    """What one claim may spend under one profile.

    ``settings`` holds the family's knobs (a ``Scale``; a plain mapping only for a throwaway family);
    ``deviation`` says in words how this profile departs from the posts' setup, and is printed next to the
    verdict.
    """

    seeds: int = 1  # seeds per arm unless --seeds overrides
    needs_cuda: bool = False
    deviation: str = ""  # "" means: the posts' own setup
    settings: Scale | Mapping[str, Any] = field(default_factory=Scale)

    def as_config(self) -> dict[str, Any]:
        knobs = self.settings.as_dict() if isinstance(self.settings, Scale) else dict(self.settings)
        return {"needs_cuda": self.needs_cuda, "settings": knobs}


def seeds_for(budget: Budget, override: tuple[int, ...] | None) -> tuple[int, ...]:
    """The seed list every arm of a claim shares: ``--seeds`` when given, else the budget's count."""
    return override if override is not None else tuple(range(budget.seeds))

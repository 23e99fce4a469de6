"""What a virtual mouse has learned, and how one trial changes it (docs/sim.md, "Learning").

Two kinds of knowledge, both kept per animal from day to day (rig.sim.memory):

- **Familiarity** f in [0, 1] per corridor: how well formed the mouse's visual representation of that
  corridor's texture is. It grows with every metre of the texture seen, rewarded or not (unsupervised):
  f <- 1 - (1 - f) * exp(-metres / familiarity_m).
- **Reward expectation** v in [0, 1] per corridor: the chance that the mouse anticipates water there. It is
  learned only from task trials (a water-restricted mouse): after a trial in corridor c, with r = 1 if
  water came in that trial and 0 otherwise, every known corridor y moves towards r in proportion to how
  similar it looks to c: v_y <- v_y + learning_rate * s(c, y) * (r - v_y). So what is learned in the
  rewarded corridor spreads to the unrewarded one as far as the two look alike.
- **Similarity** s(a, b) of two different corridors: `S_NAIVE` for textures the mouse has not learned to
  tell apart, falling towards a floor as both become familiar: s = floor + (S_NAIVE - floor) * (1 - fa*fb),
  floor `S_FLOOR_SAME` within one texture category (leaf1 vs leaf2) and `S_FLOOR` across categories.
  Familiarity transfers within a category only (a new leaf exemplar borrows `CATEGORY_TRANSFER` of the
  best-known leaf's familiarity): gratings pretraining does nothing for leaf and circle corridors.
  With equal numbers of rewarded and unrewarded trials the expectations settle at 1/(1+s) and s/(1+s):
  a mouse pretrained on the task's textures discriminates soon after reward learning starts, a mouse
  without that pretraining only as its own task days make the textures familiar.
- **Where the water comes**: a running estimate of the mean and spread of the positions (cm into the
  texture) where water arrived, which shapes the anticipatory ramp (rig.sim.mouse).

Everything here is plain Python on a few floats per corridor, called once per trial.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

S_NAIVE = 0.9  # similarity of two textures the mouse has no representation of yet
S_FLOOR = 0.1  # ... of two fully familiar textures of different categories (leaf vs circle)
S_FLOOR_SAME = 0.6  # ... of two fully familiar exemplars of one category (leaf1 vs leaf2)
CATEGORY_TRANSFER = 0.8  # a new exemplar starts with this share of its category's best familiarity
REWARD_POSITION_RATE = 0.05  # weight of each new water position once 20 are known (before: running mean)
MIN_SPREAD_CM = 15.0  # the reward-position spread never goes below this

_CATEGORY_RE = re.compile(r"^([A-Za-z]+)")


def category_of(name: str) -> str:
    """A corridor's texture category from its name when the protocol gives none: leaf1 -> leaf,
    leaf1_swap2 -> leaf, grating45 -> grating."""
    m = _CATEGORY_RE.match(name)
    return m.group(1).lower() if m else name


@dataclass
class CorridorKnowledge:
    """What the mouse knows about one corridor."""

    category: str
    familiarity: float = 0.0  # 0..1, grows with exposure
    expectation: float = 0.0  # 0..1, learned from water in task sessions
    metres_seen: float = 0.0  # texture metres seen, all sessions
    trials: int = 0  # trials ended in it, all sessions
    water_trials: int = 0  # of which with water


@dataclass
class Knowledge:
    """The learned state of one simulated animal (the part rig.sim.memory keeps between sessions)."""

    corridors: dict[str, CorridorKnowledge] = field(default_factory=dict)
    reward_position_cm: float | None = None  # mean position of water in the texture (None: no water yet)
    reward_spread_cm: float | None = None  # its standard deviation
    waters: int = 0  # water deliveries in the texture, all sessions
    sessions: int = 0
    task_sessions: int = 0
    exposure_sessions: int = 0

    # ---- corridors ----------------------------------------------------------------------------------

    def meet(
        self, name: str, category: str, *, prior: float | None = None, rewarded: bool = False
    ) -> CorridorKnowledge:
        """The corridor's entry, created on first sight. A mouse with `prior` expertise (one the rig has
        no memory of, configured as trained) starts with familiarity `prior` and, in corridors flagged
        rewarded, expectation `prior`. Otherwise a new corridor is novel: its familiarity is what its
        category lends it, and its expectation is what it inherits from the corridors it resembles."""
        known = self.corridors.get(name)
        if known is not None:
            return known
        if prior is not None:
            entry = CorridorKnowledge(category, familiarity=prior, expectation=prior if rewarded else 0.0)
        else:
            entry = CorridorKnowledge(category)
            # Novel: expectation by generalisation from what it looks like (computed before it is added).
            self.corridors[name] = entry
            inherited = max((self.similarity(name, y) * k.expectation
                             for y, k in self.corridors.items() if y != name), default=0.0)
            entry.expectation = min(max(inherited, 0.0), 1.0)
            return entry
        self.corridors[name] = entry
        return entry

    def effective_familiarity(self, name: str) -> float:
        """The corridor's familiarity, or what its best-known sibling of the same category lends it."""
        own = self.corridors[name]
        best = max((k.familiarity for y, k in self.corridors.items() if y != name and k.category == own.category),
                   default=0.0)
        return max(own.familiarity, CATEGORY_TRANSFER * best)

    def similarity(self, a: str, b: str) -> float:
        """How alike corridors a and b look to the mouse: 1 for the same corridor."""
        if a == b:
            return 1.0
        ka, kb = self.corridors[a], self.corridors[b]
        floor = S_FLOOR_SAME if ka.category == kb.category else S_FLOOR
        both = self.effective_familiarity(a) * self.effective_familiarity(b)
        return floor + (S_NAIVE - floor) * (1.0 - both)

    def engagement(self) -> float:
        """How much the mouse has learned that the task pays: its highest expectation anywhere."""
        return max((k.expectation for k in self.corridors.values()), default=0.0)

    # ---- learning -----------------------------------------------------------------------------------

    def end_trial(self, name: str, metres: float, *, water: bool | None, learning_rate: float,
                  familiarity_m: float, complete: bool = True) -> None:
        """A trial in corridor `name` ended after `metres` of its texture were seen. `water` None: the mouse
        was not seeking water (exposure), so only familiarity changes. An incomplete trial (the session
        ended inside it) counts for exposure only."""
        k = self.corridors[name]
        metres = max(float(metres), 0.0)
        k.metres_seen += metres
        k.familiarity = 1.0 - (1.0 - k.familiarity) * math.exp(-metres / familiarity_m)
        if not complete:
            return
        k.trials += 1
        if water is None:
            return
        k.water_trials += int(water)
        r = 1.0 if water else 0.0
        for y, ky in self.corridors.items():
            ky.expectation += learning_rate * self.similarity(name, y) * (r - ky.expectation)
            ky.expectation = min(max(ky.expectation, 0.0), 1.0)

    def water_at(self, position_cm: float) -> None:
        """Water arrived at this position in the texture: update where the mouse expects it."""
        self.waters += 1
        p = float(position_cm)
        if self.reward_position_cm is None or self.reward_spread_cm is None:
            self.reward_position_cm, self.reward_spread_cm = p, 0.0
            return
        b = max(REWARD_POSITION_RATE, 1.0 / self.waters)
        d = p - self.reward_position_cm
        self.reward_position_cm += b * d
        var = (1.0 - b) * (self.reward_spread_cm**2 + b * d * d)
        self.reward_spread_cm = math.sqrt(var)

    def end_session(self, kind: str) -> None:
        self.sessions += 1
        if kind == "task":
            self.task_sessions += 1
        else:
            self.exposure_sessions += 1

    def reward_place(self, default: tuple[float, float]) -> tuple[float, float]:
        """(mean, spread) of where water is expected; `default` before any water was had."""
        if self.reward_position_cm is None or self.reward_spread_cm is None:
            return default
        return self.reward_position_cm, max(self.reward_spread_cm, MIN_SPREAD_CM)

    # ---- plain data ---------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "corridors": {
                n: {"category": k.category, "familiarity": k.familiarity, "expectation": k.expectation,
                    "metres_seen": k.metres_seen, "trials": k.trials, "water_trials": k.water_trials}
                for n, k in self.corridors.items()
            },
            "reward_position_cm": self.reward_position_cm,
            "reward_spread_cm": self.reward_spread_cm,
            "waters": self.waters,
            "sessions": self.sessions,
            "task_sessions": self.task_sessions,
            "exposure_sessions": self.exposure_sessions,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Knowledge:
        """From to_dict()'s output (validate untrusted input first: rig.sim.memory does)."""
        corridors = {n: CorridorKnowledge(**dict(k)) for n, k in data["corridors"].items()}
        return cls(
            corridors=corridors,
            reward_position_cm=data["reward_position_cm"],
            reward_spread_cm=data["reward_spread_cm"],
            waters=data["waters"],
            sessions=data["sessions"],
            task_sessions=data["task_sessions"],
            exposure_sessions=data["exposure_sessions"],
        )

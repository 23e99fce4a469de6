"""Protocol schema: what a session does, as validated, immutable objects.

A protocol YAML file maps onto `Protocol`. All lengths are centimetres, times seconds unless a
field name says otherwise (``_ms``). Positions are measured from the start of a corridor (0 = start
of the textured part; the grey part follows the texture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rig.yamlload import format_path

TEXTURE_SOURCES = ("circle", "leaf", "rock", "brick", "grating", "grey", "image")


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldIssue:
    """One problem found by a model validator, placed at `loc` relative to the model that found it.

    `nested` carries the errors of validating a sub-object against another model (a driver's Params),
    so that a loader can report each of them at its own key and line.
    """

    loc: Loc
    message: str = ""
    nested: ValidationError | None = None
    nested_model: type[BaseModel] | None = None

    def __str__(self) -> str:
        where = format_path(self.loc) or "(top level)"
        if self.nested is not None:
            inner = "; ".join(
                f"{format_path(e['loc']) or '(top level)'}: {e['msg']}" for e in self.nested.errors()
            )
            return f"{where}: {inner}"
        return f"{where}: {self.message}"


class FieldErrors(ValueError):
    """Raised by model validators so that each problem names its own field, not just the model.

    Pydantic wraps it as a `value_error` whose ctx['error'] is this object; rig.loading unpacks it.
    """

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


def field_error(loc: Loc, message: str) -> FieldErrors:
    return FieldErrors([FieldIssue(loc, message)])


class Frozen(BaseModel):
    """Base for every YAML-backed model: unknown keys are errors and objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Texture(Frozen):
    """What is drawn on a corridor's walls in its textured part."""

    source: Literal["circle", "leaf", "rock", "brick", "grating", "grey", "image"]
    exemplar: int = Field(1, ge=1, description="which random-crop draw of the source image")
    swap: int | None = Field(None, ge=1, le=3, description="the exemplar's four 1 m crops rotated by swap: "
                             "metre m shows crop (m + swap) mod 4 (the lab's swap1 = crops 1, 2, 3, 0)")
    angle_deg: float = Field(0.0, description="grating orientation")
    period_cm: float = Field(10.0, gt=0, description="grating spatial period on the wall")
    path: str | None = Field(None, description="image file, for source: image")

    @model_validator(mode="after")
    def _image_needs_path(self) -> Texture:
        if self.source == "image" and not self.path:
            raise field_error(("path",), "source 'image' needs a path")
        if self.source != "image" and self.path:
            raise field_error(("path",), f"path is only allowed with source 'image', not {self.source!r}")
        return self


class Corridor(Frozen):
    name: str = Field(min_length=1, max_length=64)
    texture: Texture
    texture_length_cm: float = Field(400.0, gt=0, le=10_000)
    grey_length_cm: float = Field(200.0, ge=0, le=10_000)
    rewarded: bool = False
    probe: bool = False
    weight: float = Field(1.0, gt=0, description="relative frequency among non-probe corridors")

    @property
    def length_cm(self) -> float:
        return self.texture_length_cm + self.grey_length_cm


class GatedMovement(Frozen):
    """The paper's rule: constant speed while the ball runs above threshold for a hold time."""

    rule: Literal["gated"]
    speed_cm_s: float = Field(60.0, gt=0, le=1000)
    threshold_cm_s: float = Field(6.0, ge=0, le=1000)
    hold_ms: float = Field(66.0, ge=0, le=10_000)


class ProportionalMovement(Frozen):
    """Virtual speed = gain x ball speed (backward running does not move the corridor)."""

    rule: Literal["proportional"]
    gain: float = Field(1.0, gt=0, le=100)
    max_speed_cm_s: float | None = Field(None, gt=0)


Movement = Annotated[GatedMovement | ProportionalMovement, Field(discriminator="rule")]


class Cue(Frozen):
    """A sound cue played once per corridor at a position drawn uniformly from position_cm."""

    position_cm: tuple[float, float] = (50.0, 350.0)
    duration_ms: float = Field(200.0, gt=0, le=10_000)
    frequency_hz: float = Field(4000.0, gt=0, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> Cue:
        lo, hi = self.position_cm
        if lo < 0 or hi < lo:
            raise field_error(
                ("position_cm",), f"must be [low, high] with 0 <= low <= high, got {list(self.position_cm)}"
            )
        return self


class Reward(Frozen):
    """When a rewarded corridor pays out.

    - active_after_cue: the first lick after the cue (before the texture ends) is rewarded.
    - passive_after_cue: reward delay_ms after the cue, licks not required.
    - zone_active: zone starts at a position drawn from zone_start_cm; the first lick in the zone pays.
    - zone_passive: reward on entering the zone.
    """

    mode: Literal["active_after_cue", "passive_after_cue", "zone_active", "zone_passive"]
    volume_ul: float = Field(2.5, gt=0, le=50)
    delay_ms: float = Field(0.0, ge=0, le=60_000)
    zone_start_cm: tuple[float, float] | None = None
    zone_length_cm: float | None = Field(None, gt=0, description="default: to the end of the texture")
    max_per_trial: int = Field(1, ge=1, le=100)

    @model_validator(mode="after")
    def _zone_fields(self) -> Reward:
        zoned = self.mode.startswith("zone")
        if zoned and self.zone_start_cm is None:
            raise field_error(("zone_start_cm",), f"mode {self.mode!r} needs zone_start_cm: [low, high]")
        if not zoned and self.zone_start_cm is not None:
            raise field_error(("zone_start_cm",), f"only used by zone modes, not {self.mode!r}")
        if self.zone_start_cm is not None:
            lo, hi = self.zone_start_cm
            if lo < 0 or hi < lo:
                msg = f"must be [low, high] with 0 <= low <= high, got {[lo, hi]}"
                raise field_error(("zone_start_cm",), msg)
        return self

    @property
    def needs_cue(self) -> bool:
        return self.mode.endswith("after_cue")


class Order(Frozen):
    """Trial order. Probes (corridors with probe: true) are drawn with probability probe_fraction."""

    mode: Literal["pseudorandom", "blocks", "fixed"] = "pseudorandom"
    max_repeat: int | None = Field(3, ge=1, description="pseudorandom: longest run of one corridor")
    block_size: int | None = Field(None, ge=1, description="blocks: trials per block (each corridor equally)")
    sequence: tuple[str, ...] | None = Field(None, description="fixed: corridor names, repeated cyclically")
    probe_fraction: float = Field(0.0, ge=0, le=1)
    probe_start: int = Field(0, ge=0, description="no probe before this trial index")


class InterTrial(Frozen):
    """continuous: the next corridor follows the grey part with no jump (the paper's rig).
    pause: the corridor stops at its end for pause_s, then the next starts at 0.
    show_next: in continuous mode, draw the next trial's corridor beyond the grey part (as far ahead as
    the display's view distance reaches); false, or in pause mode, the world ahead is grey."""

    mode: Literal["continuous", "pause"] = "continuous"
    pause_s: float = Field(0.0, ge=0, le=600)
    show_next: bool = True


class Criterion(Frozen):
    """Learning: anticipatory licking in rewarded corridors against unrewarded ones (rig.engine.learning).

    Over the last `window` finished non-probe trials of each kind (rewarded / unrewarded corridor), the
    fraction with an anticipatory lick is computed for each; the mouse has learned when both kinds have at
    least `min_trials` trials and the `measure` reaches `threshold`: `difference` = rewarded fraction minus
    unrewarded fraction (the lab's measure), `dprime` = z(rewarded) - z(unrewarded) with the log-linear
    correction. Spontaneous licking raises both fractions alike, so it does not pass."""

    measure: Literal["difference", "dprime"] = "difference"
    threshold: float = Field(0.3, gt=0, le=10, description="difference: 0..1; dprime: in z units")
    window: int = Field(40, ge=1, le=10_000, description="latest trials of each kind considered")
    min_trials: int = Field(20, ge=1, le=10_000, description="of each kind, before anything is judged")

    @model_validator(mode="after")
    def _consistent(self) -> Criterion:
        if self.measure == "difference" and self.threshold > 1:
            raise field_error(("threshold",), f"a difference of fractions is at most 1, got {self.threshold}")
        if self.min_trials > self.window:
            raise field_error(("min_trials",), f"{self.min_trials} is more than the window ({self.window} trials)")
        return self


class Advance(Frozen):
    """When a stage hands over to the next: after a number of trials in the stage, or when the learning
    `criterion` is met (both given: whichever comes first).

    `anticipatory_fraction` (with `window`) is the former rule, kept so that older protocols and the
    session headers that hold them still load and replay exactly: the fraction of the last `window`
    rewarded-corridor trials with an anticipatory lick. It passes a mouse that licks everywhere; new
    protocols use `criterion`."""

    after_trials: int | None = Field(None, ge=1)
    criterion: Criterion | None = None
    anticipatory_fraction: float | None = Field(None, gt=0, le=1, description="deprecated: use criterion")
    window: int = Field(20, ge=1, le=10_000, description="deprecated: the window of anticipatory_fraction")

    @model_validator(mode="after")
    def _some_criterion(self) -> Advance:
        if self.after_trials is None and self.criterion is None and self.anticipatory_fraction is None:
            raise ValueError("give after_trials or criterion")
        if self.criterion is not None and self.anticipatory_fraction is not None:
            raise field_error(("anticipatory_fraction",), "give criterion or the deprecated "
                              "anticipatory_fraction, not both")
        return self


class Stage(Frozen):
    name: str = Field(min_length=1, max_length=64)
    reward: Reward | None = Field(None, description="overrides the protocol's reward rule")
    advance: Advance | None = Field(None, description="none: the stage lasts to the end of the session")


class End(Frozen):
    """When the task ends: after max_trials trials, or max_duration_s of task time (counted from the end
    of the pre-roll), whichever comes first. The post-roll follows."""

    max_trials: int | None = Field(None, ge=1, le=1_000_000)
    max_duration_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)


class Imaging(Frozen):
    """Imaging before the first trial and after the task: a pre-roll and a post-roll (grey, no trial, no
    cue, no reward, the corridor still).

    The lab's analyses take windows of 15 imaging frames around cues and first licks, so imaging must run
    well before trial 0 and past the last trial. The rolls are given in imaging frames; when a session
    starts, the runner resolves them into seconds (`pre_roll_s`, `post_roll_s`) from the imaging frame rate
    the rig expects and records both, with that rate, in the resolved protocol of the header: the engine
    reads only the seconds, so a replay reproduces them exactly. Seconds given here are used as they are.
    A protocol whose seconds are not resolved (an engine built without a runner, or a session recorded
    before the rolls existed) runs with no roll at all."""

    pre_roll_frames: int = Field(20, ge=0, le=100_000)
    post_roll_frames: int = Field(20, ge=0, le=100_000)
    pre_roll_s: float | None = Field(None, ge=0, le=3600, description="resolved by the runner; or given")
    post_roll_s: float | None = Field(None, ge=0, le=3600, description="resolved by the runner; or given")
    rate_hz: float | None = Field(None, gt=0, le=10_000, description="the imaging rate the seconds came from")

    @property
    def resolved(self) -> bool:
        return self.pre_roll_s is not None and self.post_roll_s is not None


class Protocol(Frozen):
    name: str = Field(min_length=1, max_length=128)
    kind: Literal["task", "exposure"]
    description: str = ""
    corridors: tuple[Corridor, ...] = Field(min_length=1)
    movement: Movement
    cue: Cue | None = None
    reward: Reward | None = None
    order: Order = Order()
    inter_trial: InterTrial = InterTrial()
    stages: tuple[Stage, ...] = ()
    end: End = End()
    imaging: Imaging = Imaging()

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        issues = self._check()
        if issues:
            raise FieldErrors(issues)
        return self

    def _check(self) -> list[FieldIssue]:
        """Every cross-field problem, each placed at the key a user has to change."""
        out: list[FieldIssue] = []

        def bad(loc: Loc, message: str) -> None:
            out.append(FieldIssue(loc, message))

        names = [c.name for c in self.corridors]
        for i, n in enumerate(names):
            if n in names[:i]:
                bad(
                    ("corridors", i, "name"),
                    f"corridor names must be unique; {n!r} is already corridor [{names.index(n)}]",
                )
        if self.reward is None and (not self.stages or any(s.reward is None for s in self.stages)):
            bad(("reward",), "is required (exposure protocols give it too: it says where reward was due)")
        if self.kind == "task" and not any(c.rewarded for c in self.corridors):
            bad(("corridors",), "a task protocol needs at least one corridor with rewarded: true")
        if all(c.probe for c in self.corridors):
            bad(("corridors",), "at least one corridor must not be a probe")
        if self.order.probe_fraction > 0 and not any(c.probe for c in self.corridors):
            bad(("order", "probe_fraction"), f"is {self.order.probe_fraction} but no corridor is a probe")
        if self.order.mode == "fixed":
            if not self.order.sequence:
                bad(("order", "sequence"), "order mode 'fixed' needs a sequence of corridor names")
            for k, n in enumerate(self.order.sequence or ()):
                if n not in names:
                    bad(("order", "sequence", k), f"{n!r} is not a corridor; defined: {names}")
        if self.order.mode == "blocks" and not self.order.block_size:
            bad(("order", "block_size"), "order mode 'blocks' needs block_size")
        for loc, rule in self._located_reward_rules():
            if rule.needs_cue and self.cue is None:
                bad((*loc, "mode"), f"reward mode {rule.mode!r} needs a cue; this protocol has no cue")
            if rule.zone_start_cm is not None:
                outside = [
                    f"{c.name!r} ({c.texture_length_cm:g} cm)"
                    for c in self.corridors
                    if rule.zone_start_cm[1] >= c.texture_length_cm
                ]
                if outside:
                    zone = list(rule.zone_start_cm)
                    bad(
                        (*loc, "zone_start_cm"),
                        f"{zone} is outside the texture of corridor {', '.join(outside)}; "
                        "the zone must start before the texture ends",
                    )
        if self.cue is not None:
            beyond = [
                f"{c.name!r} ({c.texture_length_cm:g} cm)"
                for c in self.corridors
                if self.cue.position_cm[1] > c.texture_length_cm
            ]
            if beyond:
                where = list(self.cue.position_cm)
                bad(
                    ("cue", "position_cm"),
                    f"{where} reaches beyond the texture of corridor {', '.join(beyond)}",
                )
        if self.end.max_trials is None and self.end.max_duration_s is None:
            bad(("end",), "give max_trials or max_duration_s (a session must be able to end)")
        for i, s in enumerate(self.stages[:-1]):
            if s.advance is None:
                msg = f"stage {s.name!r} is not the last stage, so it needs an advance criterion"
                bad(("stages", i, "advance"), msg)
        return out

    def _located_reward_rules(self) -> list[tuple[Loc, Reward]]:
        rules: list[tuple[Loc, Reward]] = [
            (("stages", i, "reward"), s.reward) for i, s in enumerate(self.stages) if s.reward is not None
        ]
        if self.reward is not None:
            rules.append((("reward",), self.reward))
        return rules

    def reward_rules(self) -> tuple[Reward, ...]:
        rules = [s.reward for s in self.stages if s.reward is not None]
        if self.reward is not None:
            rules.append(self.reward)
        return tuple(rules)

    def stage_reward(self, stage_index: int) -> Reward:
        """The reward rule in force during a stage (the protocol's rule when the stage has none)."""
        if self.stages and self.stages[stage_index].reward is not None:
            return self.stages[stage_index].reward  # type: ignore[return-value]
        assert self.reward is not None
        return self.reward

    def corridor(self, name: str) -> Corridor:
        for c in self.corridors:
            if c.name == name:
                return c
        raise KeyError(name)

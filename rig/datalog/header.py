"""The session header (header.json): one typed model that the writer writes and every reader reads.

`SessionFacts` is what the session knows before it starts (live or replay): the protocol and config as
run, the seed, who and what ran it. `SessionHeader` is what header.json holds: those facts plus the
writer's own keys (format, date, session number, the record layouts). Readers get a `SessionHeader`, never
a raw dict; a header that does not fit the model is a damaged session (rig.datalog.reader.SessionError).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "corridor-rig-session"
FORMAT_VERSION = 1

# Header keys the writer fills in itself; a session's facts never hold them.
WRITER_KEYS = ("format", "format_version", "date", "session", "files", "flush_interval_s")


class _Model(BaseModel):
    # What a session writes is exactly the model; what a reader reads may hold keys a newer writer added
    # (SessionHeader keeps them rather than failing).
    # Strict: a boolean is never a number, a string never an integer; floats are finite.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Software(_Model):
    rig: str = ""
    python: str = ""
    numpy: str = ""
    pydantic: str = ""


class ReplayOrigin(_Model):
    """A replay's or what-if's original session."""

    mode: Literal["replay", "whatif"]
    path: str
    animal: str | None = None
    date: str | None = None
    session: int | None = None
    protocol: str | None = None
    protocol_sha256: str | None = None
    complete: bool = False
    iterations: int = 0
    speed: float | str = 1.0  # session seconds per wall second, or "virtual clock"
    inputs: str = ""
    display: str = ""
    whatif_protocol: str | None = None
    whatif_protocol_source: str | None = None


class SubjectFacts(_Model):
    """The animal's registry record (rig.lab.subjects) as it stood when the session started."""

    id: str
    species: str
    sex: Literal["M", "F", "U", "O"]
    date_of_birth: str | None = None  # YYYY-MM-DD
    strain: str | None = None
    genotype: str | None = None
    description: str = ""
    restricted: bool = False
    water_restriction_start: str | None = None  # YYYY-MM-DD
    baseline_weight_g: float | None = None
    daily_water_target_ml: float | None = None


class WaterFacts(_Model):
    """The animal's water on the session's day before the session started (rig.lab.water)."""

    target_ml: float | None = None  # the daily target (restricted animals)
    rig_ml: float = 0.0  # earlier sessions of the day
    supplement_ml: float = 0.0  # supplements given so far that day


class CalibrationRef(_Model):
    """The valve calibration the session's volumes were converted with (rig.config.ValveCalibration)."""

    id: str
    date: str | None = None  # YYYY-MM-DD; None: the config's calibration carries no date


class SessionFacts(_Model):
    """What a session records about itself before its first iteration."""

    animal: str
    protocol: dict[str, Any]  # the protocol as run (rig.protocol.Protocol dumped as JSON)
    protocol_yaml: str
    protocol_sha256: str
    config: dict[str, Any]  # the rig config as run (rig.config.RigConfig dumped as JSON)
    seed: int
    fast: bool
    frame_rate_hz: float = Field(gt=0, le=1000)  # the config bounds it so; a reader sizes streams by it
    experimenter: str = ""
    notes: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    software: Software = Field(default_factory=Software)
    git_commit: str = "unknown"
    host: str = ""
    start_time: str = ""
    replay_of: ReplayOrigin | None = None
    sim: dict[str, Any] | None = None  # a simulated session: what the virtual mouse knew at the start (rig.sim)
    subject: SubjectFacts | None = None  # None: the animal is not in the registry
    weight_g: float | None = Field(None, gt=0)  # at session start (rig run --weight-g, or weighed that day)
    water: WaterFacts | None = None
    calibration: CalibrationRef | None = None

    @property
    def protocol_name(self) -> str:
        name = self.protocol.get("name")
        return name if isinstance(name, str) else ""

    @property
    def protocol_kind(self) -> str:
        kind = self.protocol.get("kind")
        return kind if isinstance(kind, str) else ""

    def document(self) -> dict[str, Any]:
        """The facts as JSON-ready data, without unset optional sections."""
        return self.model_dump(mode="json", exclude_none=True)


class FileSpec(_Model):
    dtype: list[list[str]] | None = None  # binary streams: the record layout, [name, numpy type] pairs
    format: str | None = None  # "jsonl" for line files


class SessionHeader(SessionFacts):
    """header.json: the session's facts plus the writer's keys."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False)

    format: Literal["corridor-rig-session"]
    format_version: int = Field(ge=1, le=FORMAT_VERSION)
    date: str
    session: int = Field(ge=1)
    flush_interval_s: float = Field(gt=0)
    files: dict[str, FileSpec]

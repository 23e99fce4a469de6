"""Session and learning figures (`rig summary`), and the per-trial behaviour tables behind them.

    from rig.figures import trial_data, render_session, render_animal
    render_session("data/M1/2026-03-02/001", "summary.png")
    render_animal("data/M1", "learning.png")

matplotlib is imported only when a figure is drawn, so the tables need numpy alone.
"""

from rig.figures.animal import animal_figure, render_animal
from rig.figures.learning import CorridorScore, DayRecord, SessionRecord, animal_days, session_record
from rig.figures.session import render_session, session_figure
from rig.figures.trials import (
    Licks,
    PositionProfiles,
    Rewards,
    TrialData,
    TrialDataError,
    Trials,
    position_profiles,
    running_fraction,
    trial_data,
)

__all__ = [
    "CorridorScore", "DayRecord", "Licks", "PositionProfiles", "Rewards", "SessionRecord", "TrialData",
    "TrialDataError", "Trials", "animal_days", "animal_figure", "position_profiles", "render_animal",
    "render_session", "running_fraction", "session_figure", "session_record", "trial_data",
]

"""Unity's clock: how fast simulated time runs against wall time, from the engine configuration.

A real Unity player advances game time frame by frame. With ``Time.captureFramerate`` 0 (Unity's
default), each frame's game time is the real time since the last frame times ``Time.timeScale``;
with a capture frame rate ``c`` > 0, every frame advances exactly ``timeScale / c`` seconds whatever
the wall time. ``Application.targetFrameRate`` ``t`` > 0 caps the frames per wall second; -1 (the
default) leaves them unlimited. No frame advances more than ``Time.maximumDeltaTime`` (1/3 s in
3DBall) of game time. Physics steps (0.02 s each in 3DBall) run to keep up with game time. So the
game runs at most at

    rate = time_scale                          (capture 0, no target frame rate)
    rate = min(time_scale, t * 1/3)            (capture 0, target frame rate t)
    rate = t * min(time_scale / c, 1/3)        (capture c, target frame rate t)
    unlimited                                  (capture c, no target frame rate)

game seconds per wall second. At time_scale 1 (and capture 0) a 3DBall decision, 5 physics steps,
takes 0.1 s of wall time: training crawls. mlagents-learn's default of 20 means at most 20x real
time (200 decisions per second), and Unity clamps time_scale to [1, 100] (EngineConfigurationChannel),
so 100 means 1000 decisions per second: more than this simulated build can step, i.e. as fast as
possible. mlagents-learn also sends capture frame rate 60 with no target frame rate: unlimited.

This build paces its decisions the same way once the trainer has sent an engine configuration.
Until then it runs as fast as it can, where a real build would start at time scale 1 (real time):
the one deliberate difference, so tests and tools that never configure the engine stay fast.
When the trainer is slower than the rate (its own computing between steps counts), nothing waits;
the game falls behind by at most ``maximumDeltaTime`` and then catches up without waiting, as Unity
does after a long frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_TIME_SCALE, MAX_TIME_SCALE = 1.0, 100.0
"""Unity's EngineConfigurationChannel clamps time_scale to this range."""
MAXIMUM_DELTA_TIME = 1.0 / 3.0
"""Time.maximumDeltaTime in 3DBall (ProjectSettingsOverrides): the most game time one frame runs."""


class GameClock:
    """Waits so that simulated time runs no faster than Unity's time settings allow."""

    def __init__(
        self,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._now, self._sleep = now, sleep
        self.time_scale: float | None = None
        """Time.timeScale once configured (clamped like Unity); None: never configured."""
        self.capture_frame_rate = 0
        self.target_frame_rate = -1
        self.game_time = 0.0
        self._origin: float | None = None  # wall time at which game time 0 would have been

    @property
    def configured(self) -> bool:
        return self.time_scale is not None

    def set_time_scale(self, value: float) -> None:
        self.time_scale = min(max(float(value), MIN_TIME_SCALE), MAX_TIME_SCALE)
        self._origin = None

    def set_target_frame_rate(self, value: int) -> None:
        self.target_frame_rate = int(value)
        self._origin = None

    def set_capture_frame_rate(self, value: int) -> None:
        self.capture_frame_rate = int(value)
        self._origin = None

    def rate(self) -> float | None:
        """Game seconds per wall second at most, or None for no limit (see the module docstring)."""
        if self.time_scale is None:
            return None
        target = self.target_frame_rate if self.target_frame_rate > 0 else None
        if self.capture_frame_rate > 0:
            if target is None:
                return None
            return target * min(self.time_scale / self.capture_frame_rate, MAXIMUM_DELTA_TIME)
        if target is None:
            return self.time_scale
        return min(self.time_scale, target * MAXIMUM_DELTA_TIME)

    def advance(self, game_seconds: float) -> float:
        """Run ``game_seconds`` of game time, first waiting as long as the rate demands.

        Returns the seconds waited.
        """
        rate = self.rate()
        waited = 0.0
        if rate is not None:
            now = self._now()
            if self._origin is None:
                self._origin = now - self.game_time / rate
            due = self._origin + (self.game_time + game_seconds) / rate
            if due > now:
                waited = due - now
                self._sleep(waited)
            elif (now - due) * rate > MAXIMUM_DELTA_TIME:  # too far behind: Unity drops the rest
                self._origin += now - due - MAXIMUM_DELTA_TIME / rate
        self.game_time += game_seconds
        return waited

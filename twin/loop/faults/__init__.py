"""Faults injected at replay time: blockage events on the channel and sensor dropout per modality.

Faults are drawn when an episode starts, from a seed, so one cached dataset serves every robustness
study and the same (seed, drive) always gives the same schedule. Every fault component draws from
its own random stream (`streams`), so switching one fault on or off never changes the draws of
another: a policy that does not read the camera scores identically with and without camera dropout.

- `blockage`: the Poisson event schedule and its effect on the sweeps (paths cut and h recomputed,
  or the measured RSRP of the beams aimed at the UE attenuated when no path table exists);
- `dropout`: the burst process per modality and the corruption of one frame (missing, frozen,
  noisy, partial);
- `schedule`: every fault of one drive, from the scenario's `faults` section
  (twin.scenario.faults).
"""

from twin.loop.faults.blockage import BlockageSchedule, blockage_schedule, blocked_sweeps, cut_mask
from twin.loop.faults.dropout import DropoutSchedule, burst_mask, corrupt, dropout_schedule
from twin.loop.faults.schedule import Schedules, schedules
from twin.loop.faults.streams import STREAM_BLOCKAGE, STREAM_MEASUREMENT, STREAM_MODALITY, STREAM_SRS, stream

__all__ = [
    "STREAM_BLOCKAGE",
    "STREAM_MEASUREMENT",
    "STREAM_MODALITY",
    "STREAM_SRS",
    "BlockageSchedule",
    "DropoutSchedule",
    "Schedules",
    "blockage_schedule",
    "blocked_sweeps",
    "burst_mask",
    "corrupt",
    "cut_mask",
    "dropout_schedule",
    "schedules",
    "stream",
]

"""Blockage windows: (N, 8, K) sweeps in dB, 0/1 labels, and the normalisation both sources share.

Real data: a DeepSense `future-N/scenario17_dev_series_<split>.csv` row names 8 consecutive power
files (`unit1_pwr_60ghz_1..8`, relative to the scenario folder, beam 1..64 per line) and, when
labelled, whether the link is blocked N frames after the last observed one: `blockage_final`
(future-1) or the last of `blockage_1..N` (future-5, -10, which also list the frames between).
Twin data: every 8 consecutive frames of a drive's `rsrp_dbm` (beams 0-based), labelled by the
store's `blocked` flag N frames after the last of them.

Normalisation (`normalise`, identical for both): each window standardised by its own mean and
standard deviation over its 8 × K dB values (frames without power take the window's weakest level).
The real powers are uncalibrated and the twin's are absolute dBm, so only levels relative to the
window itself mean the same in both; a blocker shows as later sweeps falling below earlier ones,
which this keeps. (Relative dB on a fixed scale trained far worse on the real splits: scenario 17's
sweeps span about 25 dB, and the beam-to-beam differences that carry the signal are ~1 dB.)
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import StoreError
from twin.replay.formats import BadFile, ReplayError, read_power, resolve
from twin.store import TwinStore

SWEEPS = 8  # observed sweeps per window (DeepSense's series CSVs)
MIN_SPREAD_DB = 0.1  # a flat window stays near 0 instead of amplifying quantisation noise
LABEL = "blockage_final"
_LABEL_K = re.compile(r"^blockage_(\d+)$")
POWER_COLUMNS = tuple(f"unit1_pwr_60ghz_{i}" for i in range(1, SWEEPS + 1))
_FUTURE = re.compile(r"future-(\d+)$")
_RUN = re.compile(r"^(run\d+)-")


@dataclass
class Windows:
    """Samples of one source: sweeps in dB (NaN: no usable power), labels when known."""

    sweeps: np.ndarray  # (N, SWEEPS, K) float32 dB
    labels: np.ndarray | None  # (N,) int64 0/1, None for an unlabelled CSV
    index: np.ndarray  # (N,) int64: the CSV's `index`, or the running number of a twin window
    groups: np.ndarray  # (N,) str: split unit (twin: the run; real: the CSV itself)
    source: str

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, rows: np.ndarray) -> Windows:
        labels = None if self.labels is None else self.labels[rows]
        return Windows(self.sweeps[rows], labels, self.index[rows], self.groups[rows], self.source)


def normalise(sweeps_db: np.ndarray) -> np.ndarray:
    """(N, S, K) dB → float32, each window with mean 0 and standard deviation 1 (see the module)."""
    finite = np.isfinite(sweeps_db)
    low = np.where(finite, sweeps_db, np.inf).min(axis=(1, 2), keepdims=True)
    filled = np.where(finite, sweeps_db, np.where(np.isfinite(low), low, 0.0))
    mean = filled.mean(axis=(1, 2), keepdims=True)
    spread = np.maximum(filled.std(axis=(1, 2), keepdims=True), MIN_SPREAD_DB)
    return ((filled - mean) / spread).astype(np.float32)


def horizon_of(folder: str | Path) -> int:
    """N of a DeepSense `future-N` folder (or of a CSV inside one)."""
    path = Path(folder)
    for part in (path.name, path.parent.name):
        match = _FUTURE.match(part)
        if match:
            return int(match.group(1))
    raise ReplayError(f"{folder}: not a DeepSense future-N folder (expected a name like future-5)")


def series_csv(folder: str | Path, split: str) -> Path:
    """The `<split>` CSV of a future-N folder (a CSV path is returned as it is)."""
    path = Path(folder)
    if path.suffix == ".csv":
        return path
    found = sorted(path.glob(f"*_series_{split}.csv"))
    if not path.is_dir() or not found:
        raise ReplayError(f"{path}: no *_series_{split}.csv (expected a DeepSense future-N folder)")
    return found[0]


def _label(value: str, where: str) -> int:
    try:
        label = float(value)
    except ValueError:
        label = math.nan
    if label not in (0.0, 1.0):
        raise ReplayError(f"{where} = {value!r}: expected 0 or 1")
    return int(label)


def _sweep_db(path: Path, where: str, beams: int) -> np.ndarray:
    try:
        power = read_power(path, beams)
    except BadFile as exc:
        raise ReplayError(f"{where}: {exc}") from None
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(power)
    return np.where(np.isfinite(db), db, np.nan).astype(np.float32)  # 0, negative, NaN: no power


def label_column_of(header: list[str]) -> str | None:
    """The column labelling N frames ahead: `blockage_final`, else the highest `blockage_<k>`."""
    if LABEL in header:
        return LABEL
    ahead = sorted((int(m.group(1)), h) for h in header if (m := _LABEL_K.match(h)))
    return ahead[-1][1] if ahead else None


def read_series(csv_path: str | Path, root: str | Path | None = None, beams: int = 64) -> Windows:
    """Windows of a DeepSense series CSV; `root` (default: the folder above the CSV's future-N
    folder) is where its relative paths start and what they may not leave."""
    path = Path(csv_path)
    root = Path(root) if root is not None else path.resolve().parent.parent
    if not path.is_file():
        raise ReplayError(f"{path}: series CSV not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    missing = [c for c in ("index", *POWER_COLUMNS) if c not in header]
    if missing:
        raise ReplayError(
            f"{path}: missing column {missing[0]} (expected index, {POWER_COLUMNS[0]}..{SWEEPS}"
            f"[, {LABEL} or blockage_1..N])"
        )
    if not rows:
        raise ReplayError(f"{path}: no rows")
    label_column = label_column_of(header)
    labelled = label_column is not None
    cache: dict[Path, np.ndarray] = {}  # consecutive windows share 7 of their 8 files
    sweeps = np.empty((len(rows), SWEEPS, beams), np.float32)
    labels = np.empty(len(rows), np.int64)
    index = np.empty(len(rows), np.int64)
    for r, row in enumerate(rows):
        where = f"{path.name} row {r + 1}"
        try:
            index[r] = int(row["index"])
        except ValueError:
            raise ReplayError(f"{where} column index = {row['index']!r}: expected an integer") from None
        for s, column in enumerate(POWER_COLUMNS):
            file = resolve(root, root, row[column], f"{where} column {column}")
            if file not in cache:
                cache[file] = _sweep_db(file, f"{where} column {column}", beams)
            sweeps[r, s] = cache[file]
        if labelled:
            labels[r] = _label(row[label_column], f"{where} column {label_column}")
    groups = np.full(len(rows), path.stem)
    return Windows(sweeps, labels if labelled else None, index, groups, str(path))


def drive_windows(rsrp_dbm: np.ndarray, blocked: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of one drive: sweeps of frames t−7 … t and the label `blocked[t + horizon]`,
    for each t whose label frame lies inside the drive."""
    last = np.arange(SWEEPS - 1, len(blocked) - horizon)
    if last.size == 0:
        return np.empty((0, SWEEPS, rsrp_dbm.shape[1]), np.float32), np.empty(0, np.int64)
    frames = last[:, None] + np.arange(-(SWEEPS - 1), 1)[None, :]
    sweeps = np.where(np.isfinite(rsrp_dbm), rsrp_dbm, np.nan)[frames].astype(np.float32)
    return sweeps, blocked[last + horizon].astype(np.int64)


def store_windows(path: str | Path, horizon: int, beams: int | None = None) -> Windows:
    """Every window of every drive of a twin store (same schema as `read_series`)."""
    if horizon < 1:
        raise ReplayError(f"horizon = {horizon}: expected a number of frames >= 1")
    parts_sweeps, parts_labels, parts_groups = [], [], []
    with TwinStore(path) as store:
        fields = set(store.modalities) | {"rsrp_dbm"}
        if "blocked" not in fields:
            raise StoreError(f"{path}: has no 'blocked' field; blockage labels need it")
        num_beams = int(store.attrs["num_beams"])
        if beams is not None and num_beams != beams:
            raise StoreError(f"{path}: {num_beams} beams per sweep, the predictor reads {beams}")
        for episode_id in store.episode_ids:
            episode = store.episode(episode_id, ["rsrp_dbm", "blocked"])
            sweeps, labels = drive_windows(episode["rsrp_dbm"], episode["blocked"], horizon)
            match = _RUN.match(episode_id)
            parts_sweeps.append(sweeps)
            parts_labels.append(labels)
            parts_groups.append(np.full(len(labels), match.group(1) if match else episode_id))
    sweeps = np.concatenate(parts_sweeps)
    if len(sweeps) == 0:
        raise StoreError(f"{path}: no drive is longer than {SWEEPS + horizon - 1} frames")
    labels = np.concatenate(parts_labels)
    return Windows(sweeps, labels, np.arange(len(labels)), np.concatenate(parts_groups), str(path))


def split_groups(windows: Windows, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows; whole groups (twin runs) go to one side, seeded."""
    groups = np.unique(windows.groups)
    count = min(math.ceil(val_fraction * len(groups)), len(groups) - 1) if val_fraction > 0 else 0
    held = set(groups[np.random.default_rng(seed).permutation(len(groups))[:count]])
    val = np.isin(windows.groups, list(held))
    return np.flatnonzero(~val), np.flatnonzero(val)


def fraction(windows: Windows, share: float, seed: int) -> Windows:
    """A seeded share of the windows (at least one), in their original order."""
    if not 0 < share <= 1:
        raise ReplayError(f"fraction = {share}: expected a share in (0, 1]")
    count = max(1, math.ceil(share * len(windows)))
    rows = np.sort(np.random.default_rng(seed).permutation(len(windows))[:count])
    return windows.subset(rows)

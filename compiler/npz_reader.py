"""Read an untrusted calibration .npz: names and headers checked before any data is decompressed.

np.load would decompress a member before anyone looks at its size; here every member must be a
`.npy` named after a model input, its header must declare a plain (never pickled) dtype, and the
bytes it declares must fit the caps below and its own zip entry before they are read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from qcompile.errors import CalibrationError

MAX_FILE_BYTES = 4 << 30  # all arrays of one file, uncompressed
MAX_MEMBERS = 1024


def read_npz(path: Path, names: set[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of `path`; `names` (when given) are the only member names accepted."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        hint = " (a bare .npy file: save calibration data with np.savez)" if _is_npy(path) else ""
        raise CalibrationError(f"calibration file {path} is not a .npz archive{hint}") from None
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc.strerror}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise CalibrationError(
                f"calibration file {path} has {len(members)} members (at most {MAX_MEMBERS})"
            )
        for info in members:
            if not info.filename.endswith(".npy") or "/" in info.filename:
                raise CalibrationError(
                    f"calibration file {path}: member {info.filename!r} is not a .npy array"
                )
            if names is not None and info.filename[:-4] not in names:
                raise CalibrationError(
                    f"calibration file {path}: array {info.filename[:-4]!r} is not a "
                    f"model input (inputs: {sorted(names)})"
                )
        total = sum(info.file_size for info in members)
        if total > MAX_FILE_BYTES:
            raise CalibrationError(
                f"calibration file {path} holds {total} bytes of arrays (at most {MAX_FILE_BYTES})"
            )
        try:
            return {info.filename[:-4]: _read_member(archive, info) for info in members}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise CalibrationError(f"cannot read calibration file {path}: {str(exc)[:120]}") from None


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename[:-4]
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"array {name!r}: unknown .npy version {version}")
        if dtype.hasobject:
            raise CalibrationError(
                f"calibration array {name!r} holds Python objects; only numeric arrays are read"
            )
        count = int(np.prod(shape, dtype=object))
        declared = count * dtype.itemsize
        room = info.file_size - stream.tell()
        if declared > room or declared > MAX_FILE_BYTES:
            raise CalibrationError(
                f"calibration array {name!r} declares shape {list(shape)} "
                f"({declared} bytes); "
                f"its entry holds {room}"
            )
        array = np.empty(count, dtype)
        view, done = memoryview(array.view(np.uint8)), 0
        while done < declared:
            got = stream.readinto(view[done:])
            if not got:
                raise ValueError(f"array {name!r} is truncated")
            done += got
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)

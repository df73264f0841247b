"""Bytes on the wire: the per-step output message, PNG images and side-channel messages.

Why hand-encode the step output: with protobuf 3.20 (pure Python on 3.11) building and serializing
64 ``AgentInfoProto`` messages costs ~4 ms per step, more than the rest of the player together,
while the bytes are the same every step except for a few numbers. Here each observation's static
part (shape, compression, name, ...) is encoded once, and a step only appends the changing values.
Field numbers are read from mlagents-envs' own descriptors, and a test checks the result is
byte-identical to ``SerializeToString`` of the same message, so this is the real protocol, only
cheaper (closer to what a C# build costs the trainer).

Protobuf wire format used here: a field is ``varint(field_number << 3 | wire_type)`` then a varint
(type 0), 4 little-endian bytes (type 5) or ``varint(length) + bytes`` (type 2; sub-messages,
strings, packed repeated scalars). Default values (0, False, empty) are omitted, as protobuf does.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from mlagents_envs.communicator_objects.agent_info_pb2 import AgentInfoProto
from mlagents_envs.communicator_objects.header_pb2 import HeaderProto
from mlagents_envs.communicator_objects.observation_pb2 import PNG, ObservationProto
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.unity_output_pb2 import UnityOutputProto
from mlagents_envs.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto

VARINT, FIXED32, LENGTH_DELIMITED = 0, 5, 2

ENVIRONMENT_PARAMETERS_CHANNEL = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")
ENGINE_CONFIGURATION_CHANNEL = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
TRAINING_ANALYTICS_CHANNEL = uuid.UUID("b664a4a9-d86f-5a5f-95cb-e8353a7e8356")
STATS_CHANNEL = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")
"""Unity's StatsSideChannel (uuid5 of "com.unity.ml-agents/StatsSideChannel"): build -> trainer only."""
STATS_AVERAGE, STATS_MOST_RECENT, STATS_SUM, STATS_HISTOGRAM = 0, 1, 2, 3
"""StatsAggregationMethod: how the trainer combines a stat's values within one summary period."""


def _number(message: type, field: str) -> int:
    """A field's number, from the generated descriptor (never hard-coded)."""
    return message.DESCRIPTOR.fields_by_name[field].number


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int32 values take 10 bytes, as protobuf encodes them."""
    if 0 <= value < len(_SMALL_VARINTS):
        return _SMALL_VARINTS[value]
    return _encode_varint(value)


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_encode_varint(value) for value in range(1 << 14)]
"""Lengths and ids below 16384 come from this table: the per-agent encoding calls this a lot."""


def field_key(number: int, wire_type: int) -> bytes:
    """The key that starts every field."""
    return encode_varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    """A sub-message, string, bytes or packed repeated field."""
    return field_key(number, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def packed_int32(number: int, values: list[int]) -> bytes:
    """A packed repeated int32 field (omitted when empty)."""
    return length_delimited(number, b"".join(encode_varint(v) for v in values)) if values else b""


_OBS = ObservationProto
_FLOAT_DATA_KEY = field_key(_number(_OBS, "float_data"), LENGTH_DELIMITED)
_FLOAT_DATA_INNER_KEY = field_key(_number(_OBS.FloatData, "data"), LENGTH_DELIMITED)
_COMPRESSED_KEY = field_key(_number(_OBS, "compressed_data"), LENGTH_DELIMITED)
_OBSERVATIONS_KEY = field_key(_number(AgentInfoProto, "observations"), LENGTH_DELIMITED)
_REWARD_KEY = field_key(_number(AgentInfoProto, "reward"), FIXED32)
_DONE = field_key(_number(AgentInfoProto, "done"), VARINT) + b"\x01"
_MAX_STEP_REACHED = field_key(_number(AgentInfoProto, "max_step_reached"), VARINT) + b"\x01"
_MAX_STEP_REACHED_AND_DONE = _DONE + _MAX_STEP_REACHED
_ID_KEY = field_key(_number(AgentInfoProto, "id"), VARINT)
_ACTION_MASK_NUMBER = _number(AgentInfoProto, "action_mask")
_AGENT_INFO_KEY = field_key(_number(UnityRLOutputProto.ListAgentInfoProto, "value"), LENGTH_DELIMITED)
_ENTRY_KEY_NUMBER = _number(UnityRLOutputProto.AgentInfosEntry, "key")
_ENTRY_VALUE_NUMBER = _number(UnityRLOutputProto.AgentInfosEntry, "value")
_AGENT_INFOS_NUMBER = _number(UnityRLOutputProto, "agentInfos")
_SIDE_CHANNEL_NUMBER = _number(UnityRLOutputProto, "side_channel")
_RL_OUTPUT_NUMBER = _number(UnityOutputProto, "rl_output")
_OK_HEADER = length_delimited(
    _number(UnityMessageProto, "header"),
    field_key(_number(HeaderProto, "status"), VARINT) + encode_varint(200),
)
_UNITY_OUTPUT_NUMBER = _number(UnityMessageProto, "unity_output")
_FLOAT32 = struct.Struct("<f")


@dataclass(frozen=True)
class ObservationLayout:
    """What an observation looks like apart from its values: encoded once, reused every step."""

    shape: tuple[int, ...]
    name: str
    compressed: bool = False
    channel_mapping: tuple[int, ...] = ()
    dimension_properties: tuple[int, ...] = ()

    def static_fields(self) -> tuple[bytes, bytes]:
        """The encoded fields before and after the data field, in field-number order."""
        before = packed_int32(_number(_OBS, "shape"), list(self.shape))
        if self.compressed:
            before += field_key(_number(_OBS, "compression_type"), VARINT) + encode_varint(PNG)
        after = packed_int32(_number(_OBS, "compressed_channel_mapping"), list(self.channel_mapping))
        after += packed_int32(_number(_OBS, "dimension_properties"), list(self.dimension_properties))
        after += length_delimited(_number(_OBS, "name"), self.name.encode()) if self.name else b""
        return before, after


class ObservationEncoder:
    """Encode one observation per agent as the bytes of an ``observations`` field of AgentInfoProto."""

    def __init__(self, layout: ObservationLayout) -> None:
        self.layout = layout
        self._before, self._after = layout.static_fields()
        self._float_count = int(np.prod(layout.shape))
        data_size = 4 * self._float_count
        inner_size = len(_FLOAT_DATA_INNER_KEY) + len(encode_varint(data_size)) + data_size
        float_head = (
            _FLOAT_DATA_KEY + encode_varint(inner_size) + _FLOAT_DATA_INNER_KEY + encode_varint(data_size)
        )
        body_size = len(self._before) + len(float_head) + data_size + len(self._after)
        # Uncompressed observations always have the same size: everything but the floats is fixed.
        self._float_prefix = _OBSERVATIONS_KEY + encode_varint(body_size) + self._before + float_head

    def encode_floats(self, values: np.ndarray) -> list[bytes]:
        """One observation per row of ``values`` ([n, ...] float32, sent flattened in C order, so
        [H, W, C] images stay HWC)."""
        data = np.ascontiguousarray(values, dtype="<f4").tobytes()
        size = 4 * self._float_count
        if len(data) != size * len(values):
            raise ValueError(f"observation rows of shape {values.shape[1:]} do not match {self.layout.shape}")
        prefix, suffix = self._float_prefix, self._after
        return [prefix + data[start : start + size] + suffix for start in range(0, len(data), size)]

    def encode_compressed(self, data: bytes) -> bytes:
        """``data``: one or more concatenated PNG files."""
        body = self._before + _COMPRESSED_KEY + encode_varint(len(data)) + data + self._after
        return _OBSERVATIONS_KEY + encode_varint(len(body)) + body


def encode_agent_info(
    reward: float,
    agent_id: int,
    observations: bytes,
    done: bool = False,
    max_step_reached: bool = False,
    action_mask: bytes = b"",
) -> bytes:
    """One ``AgentInfoProto`` as an item of ``ListAgentInfoProto.value`` (key and length included).

    ``observations`` from :class:`ObservationEncoder`, ``action_mask`` from :func:`encode_action_mask`.
    """
    info = _REWARD_KEY + _FLOAT32.pack(reward) if reward != 0.0 else b""
    if done:
        info += _MAX_STEP_REACHED_AND_DONE if max_step_reached else _DONE
    if agent_id:
        info += _ID_KEY + encode_varint(agent_id)
    info += action_mask + observations
    return _AGENT_INFO_KEY + encode_varint(len(info)) + info


def encode_action_mask(masked: np.ndarray) -> bytes:
    """The packed ``action_mask`` field from a bool row (True = not allowed), or b"" if none is set."""
    if not masked.any():
        return b""  # no mask and an all-False mask mean the same to the trainer
    return length_delimited(_ACTION_MASK_NUMBER, masked.astype(np.uint8).tobytes())


def encode_rl_output(behavior_name: str, agent_infos: list[bytes], side_channel: bytes = b"") -> bytes:
    """A ``UnityRLOutputProto`` with one behaviour; ``agent_infos`` from :func:`encode_agent_info`."""
    agent_list = b"".join(agent_infos)
    entry = length_delimited(_ENTRY_KEY_NUMBER, behavior_name.encode()) + length_delimited(
        _ENTRY_VALUE_NUMBER, agent_list
    )
    out = length_delimited(_AGENT_INFOS_NUMBER, entry)
    return out + length_delimited(_SIDE_CHANNEL_NUMBER, side_channel) if side_channel else out


def encode_step_message(rl_output: bytes) -> bytes:
    """The whole ``UnityMessageProto`` the player sends for a step: status 200 + ``rl_output``."""
    return _OK_HEADER + length_delimited(_UNITY_OUTPUT_NUMBER, length_delimited(_RL_OUTPUT_NUMBER, rl_output))


def encode_png(image: np.ndarray, compression_level: int = 1) -> bytes:
    """A PNG of an [H, W, 3] uint8 image (no filter, fast zlib level: it is decoded at once anyway)."""
    height, width, channels = image.shape
    if channels != 3 or image.dtype != np.uint8:
        raise ValueError(f"encode_png needs an [H, W, 3] uint8 image, got {image.shape} {image.dtype}")
    rows = np.zeros((height, 1 + width * 3), np.uint8)  # filter byte 0 (None) before each row
    rows[:, 1:] = image.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), compression_level)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Length, type, data, CRC of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def split_side_channel(data: bytes) -> Iterator[tuple[uuid.UUID, bytes]]:
    """Yield (channel id, payload) for each message: [16-byte GUID (bytes_le)][int32 LE length][payload].

    A truncated tail ends the iteration instead of raising: Unity logs and skips bad side-channel data.
    """
    offset = 0
    while offset + 20 <= len(data):
        channel_id = uuid.UUID(bytes_le=bytes(data[offset : offset + 16]))
        (length,) = struct.unpack_from("<i", data, offset + 16)
        offset += 20
        if length < 0 or offset + length > len(data):
            return
        yield channel_id, bytes(data[offset : offset + length])
        offset += length


def read_environment_parameter(payload: bytes) -> tuple[str, float] | None:
    """(key, value) of an EnvironmentParametersChannel float message; None for samplers or bad data.

    Layout: int32 key length + ASCII key, int32 type (0 = float, 1 = sampler), then float32 value.
    """
    try:
        (key_length,) = struct.unpack_from("<i", payload, 0)
        key = payload[4 : 4 + key_length].decode("ascii")
        kind, value = struct.unpack_from("<if", payload, 4 + key_length)
    except (struct.error, UnicodeDecodeError):
        return None
    return (key, value) if kind == 0 else None


def read_engine_configuration(payload: bytes) -> tuple[int, tuple[float, ...]] | None:
    """(message type, arguments) of an EngineConfigurationChannel message, or None if malformed.

    Types: 0 resolution (int32 w, h), 1 quality level (int32), 2 time scale (float32), 3 target
    frame rate (int32), 4 capture frame rate (int32).
    """
    formats = {0: "<ii", 1: "<i", 2: "<f", 3: "<i", 4: "<i"}
    try:
        (kind,) = struct.unpack_from("<i", payload, 0)
        return kind, struct.unpack_from(formats[kind], payload, 4)
    except (struct.error, KeyError):
        return None


def side_channel_message(channel_id: uuid.UUID, payload: bytes) -> bytes:
    """One side-channel message: [16-byte GUID (bytes_le)][int32 LE length][payload]."""
    return channel_id.bytes_le + struct.pack("<i", len(payload)) + payload


def encode_stat(key: str, value: float, aggregation: int) -> bytes:
    """A StatsSideChannel message, as Unity's StatsRecorder.Add sends it: string key, float32 value,
    int32 aggregation method (STATS_AVERAGE, STATS_MOST_RECENT, STATS_SUM or STATS_HISTOGRAM)."""
    name = key.encode("ascii")
    payload = struct.pack("<i", len(name)) + name + struct.pack("<fi", value, aggregation)
    return side_channel_message(STATS_CHANNEL, payload)

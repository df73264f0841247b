"""Write protocol_golden.json: every ML-Agents protocol message, every field set, serialized natively.

The golden file is what mlagents-envs' own generated code produces on protobuf 3.20.3. The tests
rebuild the same samples in whichever venv they run in (hook on protobuf 6, or native on 3.20.3)
and check the bytes and the parsed field values against it. Regenerate it only in the conservative
venv, which is where the original generated code runs unmodified:

    .venv-conservative/bin/python tests/data/make_protocol_golden.py

The sample values are derived from each field's number and type, so a field added to the protocol
is covered without editing this file.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

GOLDEN_PATH = Path(__file__).with_name("protocol_golden.json")
PROTO_PACKAGE = "mlagents_envs.communicator_objects"
REPEATED_COUNT = 2
"""Elements per repeated field and entries per map: two shows order and framing are kept."""
MAX_DEPTH = 6
"""Guard against recursive message types (the protocol has none today)."""

# google.protobuf.descriptor.FieldDescriptor type numbers; constants, so no import is needed.
TYPE_DOUBLE, TYPE_FLOAT, TYPE_INT64, TYPE_UINT64, TYPE_INT32 = 1, 2, 3, 4, 5
TYPE_FIXED64, TYPE_FIXED32, TYPE_BOOL, TYPE_STRING = 6, 7, 8, 9
TYPE_MESSAGE, TYPE_BYTES, TYPE_UINT32, TYPE_ENUM = 11, 12, 13, 14
TYPE_SFIXED32, TYPE_SFIXED64, TYPE_SINT32, TYPE_SINT64 = 15, 16, 17, 18
SIGNED_INTEGERS = {TYPE_INT64, TYPE_INT32, TYPE_SFIXED32, TYPE_SFIXED64, TYPE_SINT32, TYPE_SINT64}
UNSIGNED_INTEGERS = {TYPE_UINT64, TYPE_FIXED64, TYPE_FIXED32, TYPE_UINT32}


def protocol_modules() -> dict[str, ModuleType]:
    """Every generated ``*_pb2`` module of the installed mlagents-envs, by module name."""
    package = importlib.import_module(PROTO_PACKAGE)
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if info.name.endswith("_pb2"))
    return {f"{PROTO_PACKAGE}.{name}": importlib.import_module(f"{PROTO_PACKAGE}.{name}") for name in names}


def message_classes() -> dict[str, type]:
    """Every message class of the protocol (nested ones too, map entries excepted), by full name."""
    classes: dict[str, type] = {}
    for module in protocol_modules().values():
        for name in module.DESCRIPTOR.message_types_by_name:
            _collect_message_classes(getattr(module, name), classes)
    return dict(sorted(classes.items()))


def _collect_message_classes(message_class: type, classes: dict[str, type]) -> None:
    """Add a class and its nested classes; map entries are only reachable through their maps."""
    descriptor = message_class.DESCRIPTOR
    if descriptor.GetOptions().map_entry:
        return
    classes[descriptor.full_name] = message_class
    for nested in descriptor.nested_types:
        _collect_message_classes(getattr(message_class, nested.name), classes)


def build_samples() -> dict[str, Any]:
    """Samples of every protocol type with every field set to a value that is not its default.

    A type with a oneof gets one sample per member (``Name[member]``), since only one can be set.
    """
    samples = {}
    for message_class in message_classes().values():
        for variant in range(oneof_variant_count(message_class.DESCRIPTOR)):
            sample = message_class()
            fill_message(sample, variant=variant)
            samples[sample_name(sample, variant)] = sample
    return samples


def oneof_variant_count(descriptor: Any) -> int:
    """How many samples it takes to set every member of every oneof at least once."""
    return max((len(oneof.fields) for oneof in descriptor.oneofs), default=1)


def sample_name(message: Any, variant: int) -> str:
    """``communicator_objects.ObservationProto[float_data]`` for a oneof choice, else the full name."""
    descriptor = message.DESCRIPTOR
    if not descriptor.oneofs:
        return descriptor.full_name
    chosen = ",".join(oneof.fields[variant % len(oneof.fields)].name for oneof in descriptor.oneofs)
    return f"{descriptor.full_name}[{chosen}]"


def fill_message(message: Any, depth: int = 0, variant: int = 0) -> None:
    """Set every field of ``message`` (of each oneof, member ``variant``), sub-messages recursively.

    Elements of a repeated message field take variants 0, 1, ..., so a list of observations holds
    both a compressed and a float observation.
    """
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[variant % len(oneof.fields)].name != field.name:
            continue
        if is_map(field):
            _fill_map(message, field, depth)
        elif is_repeated(field) and field.type == TYPE_MESSAGE:
            for index in range(REPEATED_COUNT):
                _fill_or_touch(getattr(message, field.name).add(), depth, variant=index)
        elif is_repeated(field):
            getattr(message, field.name).extend(scalar_value(field, i) for i in range(REPEATED_COUNT))
        elif field.type == TYPE_MESSAGE:
            _fill_or_touch(getattr(message, field.name), depth)
        else:
            setattr(message, field.name, scalar_value(field, 0))


def _fill_map(message: Any, field: Any, depth: int) -> None:
    """Add map entries in key order, so insertion order and sorted order agree."""
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    the_map = getattr(message, field.name)
    for index in range(REPEATED_COUNT):
        key = scalar_value(key_field, index)
        if value_field.type == TYPE_MESSAGE:
            _fill_or_touch(the_map[key], depth, variant=index)
        else:
            the_map[key] = scalar_value(value_field, index)


def _fill_or_touch(message: Any, depth: int, variant: int = 0) -> None:
    """Fill a sub-message, or past MAX_DEPTH mark it present without recursing further."""
    if depth < MAX_DEPTH:
        fill_message(message, depth + 1, variant)
    else:
        message.SetInParent()


def scalar_value(field: Any, index: int) -> Any:
    """A value for a scalar field that is never the default and differs between elements.

    Floats are multiples of 1/4 so they survive float32 exactly; integers are signed where the
    type is, to exercise zig-zag and ten-byte varints.
    """
    seed = field.number * 10 + index + 1
    if field.type in (TYPE_FLOAT, TYPE_DOUBLE):
        return seed + 0.25
    if field.type in SIGNED_INTEGERS:
        return -seed
    if field.type in UNSIGNED_INTEGERS:
        return seed
    if field.type == TYPE_BOOL:
        return index % 2 == 0
    if field.type == TYPE_STRING:
        return f"{field.name}-{index}-\u00fcnity"
    if field.type == TYPE_BYTES:
        return bytes([0, 255, field.number % 256, index])
    if field.type == TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values if value.number != 0]
        return numbers[index % len(numbers)] if numbers else 0
    raise TypeError(f"field {field.full_name} has type {field.type}, which the sample builder does not know")


def field_values(message: Any) -> dict[str, Any]:
    """Every field of ``message`` as plain JSON values, read field by field (bytes as hex)."""
    return {field.name: _field_value(message, field) for field in message.DESCRIPTOR.fields}


def _field_value(message: Any, field: Any) -> Any:
    """One field as JSON; maps become ``[key, value]`` pairs sorted by key, absent messages None."""
    value = getattr(message, field.name)
    if is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        return [[_json_scalar(key), _json_item(value_field, value[key])] for key in sorted(value)]
    if is_repeated(field):
        return [_json_item(field, item) for item in value]
    if field.type == TYPE_MESSAGE:
        return field_values(value) if message.HasField(field.name) else None
    return _json_scalar(value)


def _json_item(field: Any, item: Any) -> Any:
    """A repeated element or map value: a message as a dict, a scalar as itself."""
    return field_values(item) if field.type == TYPE_MESSAGE else _json_scalar(item)


def _json_scalar(value: Any) -> Any:
    """Bytes as ``{"hex": ...}``, so JSON can hold them and they do not compare equal to strings."""
    return {"hex": value.hex()} if isinstance(value, bytes) else value


def is_repeated(field: Any) -> bool:
    """Repeated or map; protobuf 7 dropped ``label`` for ``is_repeated``, 3.20 only has ``label``."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == 3  # LABEL_REPEATED


def is_map(field: Any) -> bool:
    """Whether a field is a map (a repeated field of a map-entry message type)."""
    return field.type == TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def serialize(message: Any) -> bytes:
    """Deterministic serialization (map entries sorted by key), the same in every implementation."""
    return message.SerializeToString(deterministic=True)


def module_api_names(module: ModuleType) -> list[str]:
    """The names a generated module offers its users: DESCRIPTOR, classes, enums, their values.

    Imports and helpers of the old generated code (``sys``, ``_b``, ``_sym_db``, ...) are left
    out: they are not part of the protocol's API.
    """
    from google.protobuf import descriptor
    from google.protobuf.internal import enum_type_wrapper

    # Named one by one: on upb, descriptors are not instances of descriptor.DescriptorBase.
    api_types = (
        descriptor.FileDescriptor,
        descriptor.Descriptor,
        descriptor.EnumDescriptor,
        descriptor.ServiceDescriptor,
        enum_type_wrapper.EnumTypeWrapper,
        int,
    )
    names = []
    for name, value in vars(module).items():
        is_message_class = isinstance(value, type) and hasattr(value, "DESCRIPTOR")
        if not name.startswith("__") and (is_message_class or isinstance(value, api_types)):
            names.append(name)
    return sorted(names)


def golden_document() -> dict[str, Any]:
    """The golden file's content, built from the installed packages."""
    from importlib.metadata import version

    import google.protobuf

    return {
        "produced_with": {
            "protobuf": google.protobuf.__version__,
            "mlagents-envs": version("mlagents-envs"),
            "generator": "tests/data/make_protocol_golden.py",
        },
        "modules": {
            name: {
                "descriptor_hex": module.DESCRIPTOR.serialized_pb.hex(),
                "api_names": module_api_names(module),
            }
            for name, module in protocol_modules().items()
        },
        "messages": {
            name: {"bytes_hex": serialize(sample).hex(), "fields": field_values(sample)}
            for name, sample in build_samples().items()
        },
    }


def main() -> int:
    """Write the golden file; refuse unless mlagents-envs' own generated code is what runs."""
    import google.protobuf

    if not google.protobuf.__version__.startswith("3."):
        print(
            f"make_protocol_golden.py: protobuf {google.protobuf.__version__} is installed; the golden file "
            "must come from mlagents-envs' own generated code, which needs protobuf 3.20.3. Run it with the "
            "conservative venv (requirements/dev-conservative.txt).",
            file=sys.stderr,
        )
        return 2
    if "template_runtime.fastpath" in sys.modules:
        print(
            "make_protocol_golden.py: template_runtime.fastpath is imported; run this script on its own.",
            file=sys.stderr,
        )
        return 2
    document = golden_document()
    GOLDEN_PATH.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True) + "\n")
    print(
        f"wrote {len(document['messages'])} messages from {len(document['modules'])} modules to {GOLDEN_PATH}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""template_runtime.fastpath, the import hook: the protocol bytes of mlagents-envs' own code, on any protobuf.

tests/data/protocol_golden.json holds every protocol message with every field set, serialized by
mlagents-envs' original generated code on protobuf 3.20.3 (tests/data/make_protocol_golden.py).
These tests rebuild the same samples in whichever venv runs them (the hook on protobuf 6, the
original code on 3.20.3) and compare bytes and field values with it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import google.protobuf
import pytest

import template_runtime.fastpath as mlagents_fastpath

DATA_DIR = Path(__file__).parent / "data"
SRC_DIR = Path(__file__).parents[2] / "src"
PROTOBUF_MAJOR = int(google.protobuf.__version__.split(".")[0])
SUBPROCESS_TIMEOUT_S = 120

needs_modern_protobuf = pytest.mark.skipif(
    PROTOBUF_MAJOR < 4, reason=f"protobuf {google.protobuf.__version__} runs the original generated code"
)
needs_protobuf_3 = pytest.mark.skipif(
    PROTOBUF_MAJOR >= 4, reason=f"protobuf {google.protobuf.__version__} needs the hook"
)


def _load_golden_generator() -> ModuleType:
    """tests/data is not a package: load the generator (and its sample builder) from its path."""
    spec = importlib.util.spec_from_file_location(
        "make_protocol_golden", DATA_DIR / "make_protocol_golden.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden_generator = _load_golden_generator()
GOLDEN = json.loads(golden_generator.GOLDEN_PATH.read_text())


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    """Every protocol sample, built in this venv with the generator's code."""
    return golden_generator.build_samples()


@pytest.fixture(scope="module")
def protocol_modules() -> dict[str, ModuleType]:
    """Every ``*_pb2`` module of the installed mlagents-envs, imported (through the hook if needed)."""
    return golden_generator.protocol_modules()


def _run_python(code: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter of this venv with src/ importable; run() reaps it."""
    return subprocess.run(
        [sys.executable, *options, "-c", code],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        cwd=SRC_DIR,
        env={**os.environ, "PYTHONPATH": str(SRC_DIR), "PYTHONWARNINGS": ""},
    )


# --- The protocol, against the native golden file -------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN["messages"]))
def test_sample_serializes_to_the_native_golden_bytes(samples: dict[str, Any], name: str) -> None:
    expected = bytes.fromhex(GOLDEN["messages"][name]["bytes_hex"])
    assert golden_generator.serialize(samples[name]) == expected


@pytest.mark.parametrize("name", sorted(GOLDEN["messages"]))
def test_golden_bytes_parse_to_the_native_field_values(samples: dict[str, Any], name: str) -> None:
    parsed = type(samples[name]).FromString(bytes.fromhex(GOLDEN["messages"][name]["bytes_hex"]))
    assert golden_generator.field_values(parsed) == GOLDEN["messages"][name]["fields"]


@pytest.mark.parametrize("name", sorted(GOLDEN["messages"]))
def test_sample_round_trips_field_by_field(samples: dict[str, Any], name: str) -> None:
    sample = samples[name]
    parsed = type(sample).FromString(golden_generator.serialize(sample))
    assert golden_generator.field_values(parsed) == golden_generator.field_values(sample)


def test_golden_file_covers_every_message_type_of_the_installed_protocol(samples: dict[str, Any]) -> None:
    assert sorted(samples) == sorted(GOLDEN["messages"])


_DEFAULTS: list[Any] = [None, 0, 0.0, False, "", [], {"hex": ""}]
"""What ``field_values`` reports for a field that is not set."""


def test_golden_samples_set_every_field_of_every_message_type() -> None:
    unset: dict[str, set[str]] = {}
    for name, message_class in golden_generator.message_classes().items():
        variants = [value["fields"] for key, value in GOLDEN["messages"].items() if key.split("[")[0] == name]
        set_somewhere = {
            field for fields in variants for field, value in fields.items() if value not in _DEFAULTS
        }
        missing = {field.name for field in message_class.DESCRIPTOR.fields} - set_somewhere
        if missing:
            unset[name] = missing
    assert unset == {}


@pytest.mark.parametrize("module_name", sorted(GOLDEN["modules"]))
def test_module_descriptor_is_byte_identical_to_the_native_one(
    protocol_modules: dict[str, ModuleType], module_name: str
) -> None:
    expected = bytes.fromhex(GOLDEN["modules"][module_name]["descriptor_hex"])
    assert protocol_modules[module_name].DESCRIPTOR.serialized_pb == expected


@pytest.mark.parametrize("module_name", sorted(GOLDEN["modules"]))
def test_module_offers_every_name_the_native_module_offers(
    protocol_modules: dict[str, ModuleType], module_name: str
) -> None:
    offered = set(golden_generator.module_api_names(protocol_modules[module_name]))
    assert set(GOLDEN["modules"][module_name]["api_names"]) - offered == set()


def test_enum_wrappers_and_values_match_the_native_module(protocol_modules: dict[str, ModuleType]) -> None:
    command = protocol_modules["mlagents_envs.communicator_objects.command_pb2"]
    assert (command.STEP, command.RESET, command.QUIT) == (0, 1, 2)
    assert command.CommandProto.Name(2) == "QUIT"


# --- What the hook changes, and what it leaves alone -------------------------------------------------


@needs_modern_protobuf
def test_importing_mlagents_envs_without_the_hook_fails_on_modern_protobuf() -> None:
    code = (
        "import sys\n"
        "assert 'template_runtime.fastpath' not in sys.modules, 'a .pth file (or else) installed the hook'\n"
        "import mlagents_envs.environment\n"
    )
    result = _run_python(code)
    # upb: "Descriptors cannot be created directly"; pure Python 6.x: an AttributeError. Both in a _pb2.
    assert result.returncode != 0
    assert re.search(r"communicator_objects/\w+_pb2\.py", result.stderr), result.stderr


@needs_modern_protobuf
def test_importing_mlagents_envs_with_the_hook_prints_no_warning() -> None:
    code = (
        "import template_runtime.fastpath as mlagents_fastpath, importlib, pkgutil\n"
        "import mlagents_envs.communicator_objects as package\n"
        "for info in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(package.__name__ + '.' + info.name)\n"
        "from mlagents_envs.environment import UnityEnvironment\n"
        "assert mlagents_fastpath.is_active()\n"
    )
    result = _run_python(code, "-W", "always", "-X", "dev")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_modern_protobuf
def test_hook_is_active_on_modern_protobuf() -> None:
    assert mlagents_fastpath.is_needed() and mlagents_fastpath.is_active()


@needs_modern_protobuf
def test_generated_modules_are_built_by_the_hook_on_modern_protobuf(
    protocol_modules: dict[str, ModuleType],
) -> None:
    loaders = {type(module.__loader__).__name__ for module in protocol_modules.values()}
    assert loaders == {"GeneratedModuleLoader"}


def test_grpc_module_is_loaded_by_the_normal_source_loader() -> None:
    grpc_module = importlib.import_module("mlagents_envs.communicator_objects.unity_to_external_pb2_grpc")
    assert isinstance(grpc_module.__loader__, importlib.machinery.SourceFileLoader)


@needs_protobuf_3
def test_hook_is_a_no_op_on_protobuf_3() -> None:
    assert (mlagents_fastpath.install(), mlagents_fastpath.is_active()) == (False, False)


@needs_protobuf_3
def test_generated_modules_are_the_originals_on_protobuf_3(protocol_modules: dict[str, ModuleType]) -> None:
    loaders = {type(module.__loader__) for module in protocol_modules.values()}
    assert loaders == {importlib.machinery.SourceFileLoader}


def test_install_is_idempotent_even_from_a_second_copy_of_the_module() -> None:
    before = sys.meta_path.copy()
    mlagents_fastpath.install()
    spec = importlib.util.spec_from_file_location("mlagents_fastpath_copy", mlagents_fastpath.__file__)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # its import-time install()
    assert sys.meta_path == before


@needs_modern_protobuf
def test_uninstall_removes_the_hook_and_install_restores_it() -> None:
    try:
        mlagents_fastpath.uninstall()
        assert not mlagents_fastpath.is_active()
    finally:
        assert mlagents_fastpath.install()


def test_unity_environment_steps_the_simulated_build_with_16_agents(
    unity_env_factory: Callable[..., Any],
) -> None:
    env = unity_env_factory(additional_args=["--agents", "16"])
    env.reset()
    behavior = next(iter(env.behavior_specs))
    action_spec = env.behavior_specs[behavior].action_spec
    for _ in range(3):
        decision_steps, _ = env.get_steps(behavior)
        env.set_actions(behavior, action_spec.random_action(len(decision_steps)))
        env.step()
    decision_steps, _ = env.get_steps(behavior)
    assert decision_steps.obs[0].shape == (16, 8)


# --- Building modules: the mechanism, on a package of our own -----------------------------------------


@dataclass
class FakePackage:
    """A throwaway package on sys.path whose ``*_pb2`` modules a hook finder serves."""

    name: str
    directory: Path

    def write(self, module: str, source: str) -> str:
        """Write ``<module>.py`` into the package and return its dotted name."""
        (self.directory / f"{module}.py").write_text(source)
        return f"{self.name}.{module}"

    def serialized_file(self, message: str, dependency: str | None = None) -> bytes:
        """A one-message .proto file named after this package; with a field of the dependency's type."""
        from google.protobuf import descriptor_pb2

        field_type = descriptor_pb2.FieldDescriptorProto
        file_proto = descriptor_pb2.FileDescriptorProto(
            name=f"{self.name}/{message.lower()}.proto", package=self.name, syntax="proto3"
        )
        message_proto = file_proto.message_type.add(name=message)
        message_proto.field.add(name="value", number=1, type=field_type.TYPE_INT32, label=1)
        if dependency is not None:
            file_proto.dependency.append(f"{self.name}/{dependency.lower()}.proto")
            message_proto.field.add(
                name="inner",
                number=2,
                type=field_type.TYPE_MESSAGE,
                label=1,
                type_name=f".{self.name}.{dependency}",
            )
        return file_proto.SerializeToString()


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePackage]:
    """A unique package (the default descriptor pool is per process) served by its own finder."""
    name = f"fastpath_fake_{uuid.uuid4().hex}"
    package = FakePackage(name, tmp_path / name)
    package.directory.mkdir()
    (package.directory / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        sys, "meta_path", [mlagents_fastpath.GeneratedModuleFinder(package.name), *sys.meta_path]
    )
    yield package
    for name in [name for name in sys.modules if name.startswith(package.name)]:
        del sys.modules[name]


def test_old_generated_code_is_never_executed(fake_package: FakePackage) -> None:
    serialized = fake_package.serialized_file("Probe")
    source = f"raise RuntimeError('old code ran')\nDESCRIPTOR = X(serialized_pb={serialized!r})\n"
    module = importlib.import_module(fake_package.write("probe_pb2", source))
    assert module.Probe(value=7).SerializeToString() == b"\x08\x07"


def test_dependencies_are_imported_before_the_module(fake_package: FakePackage) -> None:
    for message, dependency in (("Inner", None), ("Outer", "Inner")):
        serialized = fake_package.serialized_file(message, dependency)
        fake_package.write(f"{message.lower()}_pb2", f"DESCRIPTOR = X(serialized_pb={serialized!r})\n")
    outer = importlib.import_module(f"{fake_package.name}.outer_pb2")
    assert outer.Outer(inner={"value": 3}).inner.value == 3


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("x = 1\n", "holds no serialized_pb= or AddSerializedFile"),
        ("DESCRIPTOR = FileDescriptor(serialized_pb=_b('\\x0a\\xff'))\n", "DecodeError"),
        ("DESCRIPTOR = FileDescriptor(serialized_pb=compute())\n", "is not a literal"),
    ],
    ids=["no-descriptor-literal", "corrupt-descriptor", "computed-descriptor"],
)
def test_unbuildable_module_raises_an_error_naming_both_versions(
    fake_package: FakePackage, source: str, cause: str
) -> None:
    module_name = fake_package.write("broken_pb2", source)
    with pytest.raises(mlagents_fastpath.FastPathBuildError) as raised:
        importlib.import_module(module_name)
    message = str(raised.value)
    assert f"protobuf {google.protobuf.__version__}" in message
    assert f"mlagents-envs {importlib.metadata.version('mlagents-envs')}" in message
    assert module_name in message and cause in message and "training-conservative.txt" in message


@pytest.mark.parametrize(
    "call",
    [
        "FileDescriptor(name='x', serialized_pb=_b('\\n\\x01x'))",
        "FileDescriptor(name='x', serialized_pb=b'\\n\\x01x')",
        "_descriptor_pool.Default().AddSerializedFile(b'\\n\\x01x')",
    ],
    ids=["old-latin1-str", "old-bytes", "current-AddSerializedFile"],
)
def test_descriptor_literal_is_read_from_every_generated_code_style(call: str) -> None:
    assert mlagents_fastpath.extract_serialized_descriptor(f"DESCRIPTOR = {call}\n") == b"\n\x01x"

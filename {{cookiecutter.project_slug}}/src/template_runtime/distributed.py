"""One run on several instances: the cluster a SageMaker job provides, and what its workers share.

A SageMaker job with ``instance_count > 1`` starts the entry point on every instance (SDK v3's basic
script driver, SDK v2's sagemaker-training: neither needs a distribution setting for this). Each
process is then one *worker* of decentralized distributed PPO (DD-PPO, Wijmans et al. 2020): it runs
its own Unity instances, and the workers all-reduce their gradients every minibatch with TensorFlow's
``MultiWorkerMirroredStrategy`` (collective ring all-reduce over gRPC), so the weights stay equal.

* ``find_cluster``: who the workers are, from ``TF_CONFIG`` if it is set (a user, or a toolkit that
  writes it), else from SageMaker's ``SM_HOSTS`` / ``SM_CURRENT_HOST``, else from
  ``<SM_INPUT_CONFIG_DIR or /opt/ml/input/config>/resourceconfig.json`` (``hosts``,
  ``current_host``). Hosts are ordered algo-1, algo-2, ..., algo-10; the first is the *chief*, the
  only worker that writes checkpoints, the model and metrics. Each worker listens on port
  ``CLUSTER_PORT`` (2222, the port SageMaker's TensorFlow containers use for their servers; set
  ``TRAINER_CLUSTER_PORT`` to change it). ``TRAINER_CLUSTER_ADDRESSES`` (JSON, host -> "ip:port")
  gives the addresses directly instead of resolving the host names: ``launch.py --local-job`` runs
  algo-1 and algo-2 on this machine that way, without touching /etc/hosts. Outside a job only
  ``TF_CONFIG`` makes a cluster (several processes on one machine, as the tests run them).
* ``Workers``: what the training loop shares, each one call. With one worker (every run that is not
  a cluster) each call is the local value and TensorFlow's distribution machinery is never started.
  ``sum`` is the in-graph all-reduce (inside ``tf.function``; not inside an XLA cluster: on CPU a
  collective is a separate op), the others take and return NumPy values: ``total``, ``any``,
  ``moments`` (observation statistics over every worker's rows), ``gather_episodes``,
  ``check_same``, ``check_identical`` (a CRC of the weights, compared across workers after each
  update), ``from_chief`` (the chief's restored or initial state to everyone), ``preempted`` /
  ``done_collecting`` (DD-PPO's straggler preemption, through the coordination service's key-value
  store, like DD-PPO's TCPStore), ``finish`` (the last barrier).

Every collective is entered by every worker in the same order with the same shapes; the training
loop decides everything that changes its path (stop, end of training, early epochs) from values that
are equal on every worker. A worker that fails reports the error to the cluster, so the others stop
at their next collective instead of waiting; a worker that disappears is noticed by the
coordination service's heartbeat (``HEARTBEAT_SECONDS``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import math
import os
import re
import signal
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from template_runtime.config import ConfigError

CLUSTER_PORT = 2222
PORT_ENV = "TRAINER_CLUSTER_PORT"
ADDRESSES_ENV = "TRAINER_CLUSTER_ADDRESSES"
RESOURCE_CONFIG = "resourceconfig.json"
CONNECT_SECONDS = 600
"""How long a worker waits for the others to start (they download and extract the build first)."""
HEARTBEAT_SECONDS = 30
"""A worker not heard of for this long is considered gone: the others' collectives then fail."""
SHUTDOWN_SECONDS = 120
"""How long a finishing worker waits for the others to finish too (SageMaker's SIGTERM grace)."""
WATCH_POLL_MS = 200

logger = logging.getLogger("trainer.distributed")


class ClusterError(ConfigError):
    """The cluster description (TF_CONFIG, SM_HOSTS, resourceconfig.json) cannot be used."""


class WorkersDisagree(RuntimeError):
    """Workers that must agree do not (different weights, builds or settings)."""


# ----------------------------------------------------------------------------------------------
# The cluster: who the workers are (standard library only)


@dataclass(frozen=True)
class Cluster:
    """The run's workers: ``hosts`` (names, the chief first), their ``addresses`` and this one's rank."""

    hosts: tuple[str, ...]
    addresses: tuple[str, ...]
    rank: int
    source: str  # where the description came from
    jobs: tuple[tuple[str, int], ...] = (("worker", 0),)  # TF_CONFIG's jobs and their sizes, in rank order

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def current_host(self) -> str:
        return self.hosts[self.rank]

    def task(self) -> tuple[str, int]:
        """This worker as TF_CONFIG's (task type, index)."""
        start = 0
        for job, count in self.jobs:
            if self.rank < start + count:
                return job, self.rank - start
            start += count
        raise AssertionError("rank outside the cluster")

    def cluster_spec(self) -> dict[str, list[str]]:
        """TF_CONFIG's ``cluster``: job -> addresses."""
        spec, start = {}, 0
        for job, count in self.jobs:
            spec[job] = list(self.addresses[start : start + count])
            start += count
        return spec

    def tf_config(self) -> dict:
        task_type, index = self.task()
        return {"cluster": self.cluster_spec(), "task": {"type": task_type, "index": index}}

    def describe(self) -> str:
        if not self.distributed:
            return "one worker"
        return (
            f"worker {self.rank + 1} of {self.size} ({self.current_host}, {self.addresses[self.rank]}; "
            f"chief {self.hosts[0]}), from {self.source}"
        )


SINGLE = Cluster(hosts=("local",), addresses=("",), rank=0, source="one process", jobs=(("worker", 1),))


def find_cluster(in_job: bool, environ: Mapping[str, str] | None = None) -> Cluster:
    """The run's cluster (see the module docstring); ``SINGLE`` when there is none."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG", "").strip():
        return cluster_from_tf_config(environ["TF_CONFIG"])
    if not in_job:
        return SINGLE
    hosts_text, current = environ.get("SM_HOSTS", ""), environ.get("SM_CURRENT_HOST", "")
    if hosts_text and current:
        try:
            hosts = json.loads(hosts_text)
        except ValueError:
            raise ClusterError(f"SM_HOSTS={hosts_text!r} is not a JSON list of host names") from None
        return cluster_from_hosts(hosts, current, environ, "SM_HOSTS")
    config_dir = Path(environ.get("SM_INPUT_CONFIG_DIR") or "/opt/ml/input/config")
    resource_config = config_dir / RESOURCE_CONFIG
    if resource_config.is_file():
        try:
            resources = json.loads(resource_config.read_text(encoding="utf-8"))
            hosts, current = resources["hosts"], resources["current_host"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ClusterError(f"{resource_config} has no hosts / current_host ({error})") from None
        return cluster_from_hosts(hosts, current, environ, str(resource_config))
    return SINGLE


def cluster_from_hosts(hosts: object, current: object, environ: Mapping[str, str], source: str) -> Cluster:
    """SageMaker's host list: the chief is algo-1; addresses from TRAINER_CLUSTER_ADDRESSES or DNS."""
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ClusterError(f"{source}: hosts must be a non-empty list of names, not {hosts!r}")
    if len(set(hosts)) != len(hosts):
        raise ClusterError(f"{source}: hosts {hosts} name a host twice")
    if current not in hosts:
        raise ClusterError(f"{source}: the current host {current!r} is not one of the hosts {hosts}")
    ordered = tuple(sorted(hosts, key=_natural))
    if len(ordered) == 1:
        return Cluster(ordered, ("",), 0, source, (("worker", 1),))
    port = _port(environ)
    given = _given_addresses(environ, ordered)
    addresses = tuple(given.get(host) or f"{host}:{port}" for host in ordered)
    return Cluster(ordered, addresses, ordered.index(current), source, (("worker", len(ordered)),))


def cluster_from_tf_config(text: str) -> Cluster:
    """TF_CONFIG's ``cluster`` (jobs chief and worker) and ``task``; rank: the chief first."""
    try:
        config = json.loads(text)
        spec, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ClusterError(
            f"TF_CONFIG is not a cluster description ({error}): it needs "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    other = sorted(set(spec) - {"chief", "worker"})
    if other:
        raise ClusterError(
            f"TF_CONFIG has jobs {other}: these workers all-reduce, only chief and worker apply"
        )
    jobs, hosts, addresses = [], [], []
    for job in ("chief", "worker"):
        members = spec.get(job) or []
        if not isinstance(members, list) or not all(isinstance(a, str) and a for a in members):
            raise ClusterError(f"TF_CONFIG cluster.{job} must be a list of 'host:port', not {members!r}")
        if members:
            jobs.append((job, len(members)))
            hosts += [f"{job}-{i}" for i in range(len(members))]
            addresses += members
    if not addresses:
        raise ClusterError("TF_CONFIG lists no workers")
    start = 0
    for job, count in jobs:
        if job == task_type and 0 <= index < count:
            return Cluster(tuple(hosts), tuple(addresses), start + index, "TF_CONFIG", tuple(jobs))
        start += count
    raise ClusterError(f"TF_CONFIG task {task!r} is not in its cluster {spec!r}")


def _natural(host: str) -> tuple:
    """algo-2 before algo-10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", host))


def _port(environ: Mapping[str, str]) -> int:
    text = environ.get(PORT_ENV, "")
    if not text:
        return CLUSTER_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ClusterError(f"{PORT_ENV}={text!r} must be a port number (1-65535)")
    return int(text)


def _given_addresses(environ: Mapping[str, str], hosts: Sequence[str]) -> dict[str, str]:
    text = environ.get(ADDRESSES_ENV, "")
    if not text:
        return {}
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict) or not all(isinstance(v, str) and v for v in given.values()):
        raise ClusterError(f'{ADDRESSES_ENV}={text!r} must be JSON like {{"algo-1": "10.0.0.5:2222"}}')
    missing = [host for host in hosts if host not in given]
    if missing:
        raise ClusterError(f"{ADDRESSES_ENV} has no address for {missing}")
    port = _port(environ)
    return {host: value if ":" in value else f"{value}:{port}" for host, value in given.items()}


# ----------------------------------------------------------------------------------------------
# The workers: what they share during training


class Workers:
    """The run's workers as the training loop sees them; see the module docstring.

    ``preemption_threshold``: DD-PPO's fraction of workers that must have finished their rollout
    before the others stop collecting early (1.0: never); ``min_rollout_fraction``: the part of a
    rollout a worker always collects before it can be stopped.
    """

    def __init__(
        self, cluster: Cluster, preemption_threshold: float = 1.0, min_rollout_fraction: float = 0.25
    ):
        self.cluster = cluster
        self.size, self.rank, self.is_chief = cluster.size, cluster.rank, cluster.is_chief
        self.distributed = cluster.distributed
        needed = math.ceil(preemption_threshold * self.size - 1e-9)
        self._preempt_after = needed if self.distributed and needed < self.size else None
        self._min_rollout_fraction = min_rollout_fraction
        self._strategy = None
        self._context = None
        self._rollout = 0
        self._watch: _RolloutWatch | None = None
        self._finished = self._closed = False
        if self.distributed:
            self._connect()
            if self._preempt_after is not None:
                self._watch = _RolloutWatch(self._context, self.rank, self.size, self._rollout)

    # ---- connecting --------------------------------------------------------------------------

    def _connect(self) -> None:
        import tensorflow as tf
        from tensorflow.python.eager import context

        spec = self.cluster.cluster_spec()
        task_type, index = self.cluster.task()
        # TensorFlow logs a line per collective it builds ("Collective all_reduce tensors: ..."):
        # the run's log keeps ours and the trainer's.
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
        self._context = context.context()
        _configure_coordination(self._context, self.cluster)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task_type, task_id=index, rpc_layer="grpc"
        )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        logger.info("joining the cluster as %s; waiting for the other workers", self.cluster.describe())
        self._strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=options
        )
        strategy = self._strategy

        def replica_sum(value):  # tf.identity: the value must be made on the replica's device
            return tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, tf.identity(value)
            )

        self._replica_sum = replica_sum
        # One trace for every NumPy collective: they all send a flat float64 vector.
        self._sum64 = tf.function(
            lambda value: strategy.run(replica_sum, args=(value,)),
            input_signature=[tf.TensorSpec([None], tf.float64)],
        )
        self._tf = tf
        self._sum_numpy(np.zeros(1))  # every worker is up: the first collective
        _take_sigterm_back()
        logger.info("all %d workers connected", self.size)

    # ---- in the graph ------------------------------------------------------------------------

    def sum(self, tensor):
        """The sum of ``tensor`` over the workers, inside a ``tf.function`` (one worker: ``tensor``)."""
        if not self.distributed:
            return tensor
        return self._strategy.run(self._replica_sum, args=(tensor,))

    # ---- NumPy values ------------------------------------------------------------------------

    def _sum_numpy(self, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array, np.float64)
        if not self.distributed:
            return array
        return self._sum64(self._tf.constant(array, self._tf.float64)).numpy()

    def total(self, value: float) -> float:
        """``value`` summed over the workers (an int stays an int)."""
        result = float(self._sum_numpy(np.array([value]))[0])
        return int(round(result)) if isinstance(value, int | np.integer) else result

    def count_steps(self, mine: int) -> int:
        """The agent steps every worker collected in this rollout (``mine`` here); logged per worker in
        a cluster, so the logs show the run's step count is the sum of the workers' steps."""
        steps = self.total(int(mine))
        if self.distributed:
            logger.info("rollout: %d agent steps here, %d on all %d workers", mine, steps, self.size)
        return steps

    def any(self, flag: bool) -> bool:
        """True on every worker if it is True on any: e.g. a stop signal, so all stop at one update."""
        return self.total(1.0 if flag else 0.0) > 0

    def moments(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Mean, variance and count of the rows of ``batch`` together with every other worker's rows
        (two passes, exact as one worker's ``batch.mean(0)``, ``batch.var(0)``)."""
        batch = np.asarray(batch, np.float64)
        if not self.distributed:
            return batch.mean(axis=0), batch.var(axis=0), len(batch)
        first = self._sum_numpy(np.concatenate([[len(batch)], batch.sum(axis=0)]))
        count, mean = int(round(first[0])), first[1:] / max(first[0], 1.0)
        squares = self._sum_numpy(np.square(batch - mean).sum(axis=0))
        return mean, squares / max(count, 1), count

    def gather_episodes(self, episodes: list, keep: int) -> list:
        """Every worker's finished episodes (the last ``keep`` of each; oldest first, interleaved)."""
        if not self.distributed:
            return list(episodes)
        from template_runtime.vec_env import Episode

        mine = list(episodes)[-keep:] if keep > 0 else []
        slots = np.zeros((self.size, keep + 1, 3))
        slots[self.rank, 0, 0] = len(mine)
        for row, episode in enumerate(mine, start=1):
            slots[self.rank, row] = (episode.reward, episode.length, float(episode.truncated))
        slots = self._sum_numpy(slots.reshape(-1)).reshape(self.size, keep + 1, 3)
        lists = [
            [Episode(float(r), int(round(n)), bool(t)) for r, n, t in slots[w, 1 : 1 + int(slots[w, 0, 0])]]
            for w in range(self.size)
        ]
        longest = max(len(found) for found in lists)
        merged = []
        for back in range(longest, 0, -1):  # by age: each worker's oldest kept episode first
            merged += [found[-back] for found in lists if len(found) >= back]
        return merged

    def check_same(self, what: str, value: float) -> None:
        """Raise ``WorkersDisagree`` (on every worker) unless ``value`` is the same on all."""
        if self.distributed and not self._all_equal(float(value)):
            raise WorkersDisagree(
                f"the workers differ in {what} (this one, {self.cluster.current_host}: {value}): every "
                "instance must run the same build with the same settings"
            )

    def check_identical(self, variables: Sequence, step: int) -> int:
        """The CRC-32 of ``variables`` (after an update); raise ``WorkersDisagree`` if any worker's
        differs. Logged per update in a cluster, so a run's logs show the weights stayed equal."""
        crc = 0
        for variable in variables:
            crc = zlib.crc32(np.ascontiguousarray(variable.numpy()).tobytes(), crc)
        if self.distributed:
            same = self._all_equal(float(crc >> 16)) and self._all_equal(float(crc & 0xFFFF))
            if not same:
                raise WorkersDisagree(
                    f"after the update at step {step} the weights differ between workers (this one's "
                    f"CRC-32 {crc:08x}): the all-reduce did not keep them equal"
                )
            logger.info("step=%d weights crc32=%08x, equal on all %d workers", step, crc, self.size)
        return crc

    def _all_equal(self, value: float) -> bool:
        """Exact for integers below 2**20 (and any value whose square sums stay exact)."""
        sums = self._sum_numpy(np.array([value, value * value]))
        return sums[0] * sums[0] == self.size * sums[1]

    def from_chief(self, trainer, variables: Sequence, step: int, arrays: dict, state: dict):
        """The chief's ``(step, arrays, state)`` (what it restored from its checkpoint, or a fresh
        start) on every worker, and its values of ``variables`` assigned on every worker.

        Only the chief reads checkpoints: on SageMaker every host gets the job's checkpoint prefix
        in its own /opt/ml/checkpoints, but only the chief's copy is sure to be the one written by
        the last run (the chief alone writes). The other workers keep their own random streams:
        they are re-seeded from (seed, rank, step), and do not take the chief's RNG state.
        """
        if not self.distributed:
            return step, arrays, state
        key = "template_runtime/from_chief"
        if self.is_chief:
            payload = {"step": int(step), "state": {k: v for k, v in state.items() if k != "rng"}}
            payload["arrays"] = _encode_arrays(arrays)
            self._context.set_config_key_value(key, json.dumps(payload))
        else:
            payload = json.loads(self._context.get_config_key_value(key))
        self._broadcast(variables)
        step, state = int(payload["step"]), payload["state"]
        if not self.is_chief:
            arrays = _decode_arrays(payload["arrays"])
            trainer.rng = np.random.default_rng([trainer.seed, self.rank, step])
            if step:
                logger.info("resuming at step %d from the chief's checkpoint (%s)", step, state.get("path"))
        return step, arrays, state

    def _broadcast(self, variables: Sequence) -> None:
        values = [np.asarray(v.numpy()) for v in variables]
        flat = np.concatenate([v.reshape(-1).astype(np.float64) for v in values]) if values else np.zeros(0)
        summed = self._sum_numpy(flat if self.is_chief else np.zeros_like(flat))
        start = 0
        for variable, value in zip(variables, values, strict=True):
            variable.assign(summed[start : start + value.size].reshape(value.shape).astype(value.dtype))
            start += value.size

    # ---- DD-PPO's preemption of stragglers -----------------------------------------------------

    def preempted(self, collected: int, n_steps: int) -> bool:
        """True when this worker should stop collecting its rollout now: at least
        ``min_rollout_fraction`` of ``n_steps`` collected, and ``preemption_threshold`` of the
        workers done with theirs. Cheap: the count is kept by a background thread."""
        if self._watch is None or collected < self._min_rollout_fraction * n_steps:
            return False
        return self._watch.done >= self._preempt_after

    def done_collecting(self) -> None:
        """This worker's rollout is over (complete, preempted or stopped): the others count it."""
        if self._watch is None:
            return
        self._context.set_config_key_value(_rollout_key(self._rollout, self.rank), "done")
        if self._rollout >= 2:  # read by everyone long ago: two sync points have passed
            with contextlib.suppress(Exception):  # housekeeping only
                self._context.delete_config_key_value(_rollout_key(self._rollout - 2, self.rank))
        self._watch.stop()
        self._rollout += 1
        self._watch = _RolloutWatch(self._context, self.rank, self.size, self._rollout)

    # ---- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        """The last barrier of a run that ended normally (or on SIGTERM): the chief has written the
        model; every worker leaves together."""
        if self.distributed and not self._finished:
            self._sum_numpy(np.zeros(1))
        self._finished = True

    def close(self) -> None:
        """Stop the watcher; if the run did not reach ``finish`` (an error), tell the other workers,
        whose next collective then fails instead of waiting for this one."""
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            self._watch.stop()
        if self.distributed and not self._finished and self._context is not None:
            try:
                from tensorflow.python.framework import errors

                message = f"worker {self.cluster.current_host} stopped with an error"
                self._context.report_error_to_cluster(errors.ABORTED, message)
            except Exception:  # noqa: BLE001  (the cluster may be gone already)
                pass


def _configure_coordination(context, cluster: Cluster) -> None:
    """The coordination service MultiWorkerMirroredStrategy would start, with our timeouts."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    leader_job = cluster.jobs[0][0]
    context.configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{leader_job}/replica:0/task:0",
        cluster_register_timeout_in_ms=CONNECT_SECONDS * 1000,
        heartbeat_timeout_in_ms=HEARTBEAT_SECONDS * 1000,
        shutdown_barrier_timeout_in_ms=SHUTDOWN_SECONDS * 1000,
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=count) for job, count in cluster.jobs
        ],
    )


def _take_sigterm_back() -> None:
    """Give SIGTERM back to Python's handler (the Trainer's: checkpoint, then stop at an update).

    TensorFlow's coordination service installs a C++ SIGTERM handler of its own when the cluster
    starts (its preemption notifier, preemption_notifier.cc: "SIGTERM caught at ..."), which would
    swallow SageMaker's stop signal. Setting Python's handler again re-installs it at the C level.
    """
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


def _rollout_key(rollout: int, rank: int) -> str:
    return f"template_runtime/rollout/{rollout}/{rank}"


class _RolloutWatch:
    """Counts the workers that finished rollout ``rollout`` (their keys in the coordination service)."""

    def __init__(self, context, rank: int, size: int, rollout: int):
        self.done = 0
        self._context, self._rollout = context, rollout
        self._pending = [r for r in range(size) if r != rank]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rollout-watch-{rollout}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._pending and not self._stopped.is_set():
            for rank in list(self._pending):
                try:
                    self._context.get_config_key_value(_rollout_key(self._rollout, rank), WATCH_POLL_MS)
                except Exception as error:  # noqa: BLE001
                    if "Deadline" in type(error).__name__:
                        continue  # not done yet
                    return  # the cluster is going away: the collectives will say why
                self._pending.remove(rank)
                self.done += 1

    def stop(self) -> None:
        self._stopped.set()


def _encode_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decode_arrays(text: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(base64.b64decode(text))) as data:
        return {name: data[name] for name in data.files}

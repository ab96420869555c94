"""Which tf.distribute strategy to train with, and how the batch and learning rate follow from it.

Scaling rule: `--batch-size` is per replica, so the global batch is batch_size x replicas, and the
learning rate grows with the square root of the global batch relative to REFERENCE_BATCH (the
square-root rule suits Adam-type optimizers, whose update size does not grow with the batch).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from edge.errors import UserError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
AUGMENT_ON = ("auto", "host", "device")
REFERENCE_BATCH = 128


def usable_cores() -> int:
    """The cores this process may run on (a Slurm or container CPU limit, `taskset`), not the machine's."""
    return len(os.sched_getaffinity(0))


def size_thread_pools() -> int:
    """Size TensorFlow's op pools to the usable cores and return that count.

    TensorFlow sizes them to every core of the machine, so a job given 2 of a node's 64 cores runs
    dozens of threads that spin against each other. Must run before TensorFlow starts; in a process
    where it already has, its pools stay as they are.
    """
    cores = usable_cores()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:
        pass
    return cores


def split_cpu(devices: int) -> None:
    """Split the CPU into `devices` logical devices, so mirrored training runs without GPUs.

    Must run before TensorFlow touches a device; a later call fails with a clear message.
    """
    if devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError as e:
        raise UserError(f"--devices {devices}: TensorFlow was already initialised ({e})") from None


def workers_in_tf_config() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e})") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def slurm_resolver() -> tf.distribute.cluster_resolver.SlurmClusterResolver | None:
    """The cluster of this Slurm job step, if it runs several tasks (srun) and TF_CONFIG does not name one.

    Each task is a worker on its node, port DIGITCNN_PORT_BASE (8888) upwards; task 0 is the chief. The
    resolver insists on a share of GPUs per task: on nodes without any, each task gets a nominal one
    and CUDA_VISIBLE_DEVICES is left alone.
    """
    if workers_in_tf_config() or int(os.environ.get("SLURM_STEP_NUM_TASKS") or 1) < 2:
        return None
    gpus = len(tf.config.list_physical_devices("GPU"))
    port = int(os.environ.get("DIGITCNN_PORT_BASE") or 8888)
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver
    try:
        if gpus:
            return resolver(port_base=port, gpus_per_node=gpus)
        return resolver(port_base=port, gpus_per_node=1024, gpus_per_task=1, auto_set_gpu=False)
    except (KeyError, RuntimeError, ValueError) as e:
        raise UserError(f"Slurm job step of {os.environ['SLURM_STEP_NUM_TASKS']} tasks: cannot resolve its "
                        f"cluster ({e})") from None


def choose_strategy(name: str = "auto", devices: int = 1) -> tf.distribute.Strategy:
    """`auto`: multi-worker if TF_CONFIG names several workers or Slurm runs several tasks, mirrored
    over several GPUs (or over `devices` logical CPUs), else one device: GPU:0 if there is one, the CPU
    otherwise."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")
    size_thread_pools()
    slurm = slurm_resolver()
    if name == "multiworker" or (name == "auto" and (workers_in_tf_config() > 1 or slurm)):
        if workers_in_tf_config() < 1 and not slurm:
            raise UserError("--strategy multiworker needs TF_CONFIG naming the cluster and this worker's task, "
                            "or a Slurm job step of several tasks (srun)")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=slurm, communication_options=options)
    split_cpu(devices)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "mirrored" or (name == "auto" and (len(gpus) > 1 or devices > 1)):
        names = [d.name for d in gpus] if len(gpus) > 1 else [d.name for d in cpus]
        # NCCL only exists for GPUs; reducing on one device works for every device type.
        return tf.distribute.MirroredStrategy(names, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0].name)


def warps_on_device(strategy: tf.distribute.Strategy, augment_on: str = "auto") -> bool:
    """Whether the augmentation's warp runs in the train step on each replica's device (`device`) or in
    tf.data on the host's cores (`host`). `auto`: on the device where the replicas are GPUs or TPUs, so
    that the host's cores need not keep up with them; on a CPU the host is the device, and moving the
    warp gains nothing (issue 27)."""
    if augment_on not in AUGMENT_ON:
        raise UserError(f"unknown --augment-on {augment_on!r} (choose from {', '.join(AUGMENT_ON)})")
    if augment_on != "auto":
        return augment_on == "device"
    return any(tf.DeviceSpec.from_string(d).device_type != "CPU" for d in strategy.extended.worker_devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes final files; other workers' checkpoints go to a scratch folder."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def scaled_lr(lr: float, global_batch: int) -> float:
    return lr * (global_batch / REFERENCE_BATCH) ** 0.5

"""Training on more than one process: PyTorch's DistributedDataParallel started by torchrun,
and the device and mixed precision a run trains with.

``torchrun --nproc_per_node N -m training train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and
the rendezvous in every process's environment; `setup` joins the process group from it (gloo
on CPU, NCCL on CUDA). Without those variables `setup` joins nothing and training runs as one
process, exactly as without this module. The helpers below are what the training loop needs of
the group: whether this process is rank 0 (the only one that writes files), a barrier, rank 0's
objects shared with all, each rank's share of a batch, and figures gathered or averaged over the
ranks; each is the identity in a single process.

BatchNorm: one process normalises with the statistics of the whole batch, so N processes must
too for the same weights. On CUDA that is PyTorch's SyncBatchNorm; PyTorch's SyncBatchNorm
refuses CPU tensors (its statistics kernel has no CPU implementation), so on CPU
`GroupBatchNorm` takes the batch's sums over the ranks with a differentiable all-reduce
(`SumOverRanks`: gradients flow back through the shared statistics as SyncBatchNorm's do).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .errors import TrainingError

DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def available_devices() -> list[str]:
    """The devices of this machine, in the order ``auto`` tries them (cpu last)."""
    found = ["cuda"] if torch.cuda.is_available() else []
    if torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """The torch device of ``--device requested``: auto = cuda if available, else mps if
    available, else cpu; on CUDA the process's own GPU (``local_rank``). TrainingError naming
    what was asked and what this machine has when it is not available."""
    if requested not in DEVICES:
        raise TrainingError(f"--device {requested}: expected one of {', '.join(DEVICES)}")
    have = available_devices()
    kind = have[0] if requested == "auto" else requested
    if kind not in have:
        raise TrainingError(
            f"--device {requested}: not available on this machine (available: "
            f"{', '.join(have)}); use --device {have[0]} or --device auto"
        )
    return torch.device("cuda", local_rank) if kind == "cuda" else torch.device(kind)


def check_amp(amp: str | None, device: torch.device) -> None:
    """TrainingError unless ``--amp`` is unset or a known dtype on a CUDA device."""
    if amp is None:
        return
    if amp not in AMP_DTYPES:
        raise TrainingError(f"--amp {amp}: expected one of {', '.join(AMP_DTYPES)}")
    if device.type != "cuda":
        raise TrainingError(
            f"--amp {amp}: mixed precision needs a CUDA device, and this run trains on "
            f"{device.type} (available: {', '.join(available_devices())})"
        )


@dataclass(frozen=True)
class Context:
    """Where this process trains: its rank among ``world_size`` processes (``local_rank`` on
    its node), its device, its mixed precision (None: float32) and the process group's backend
    (None: a single process without a group)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: str | None = None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """The forward pass's mixed-precision context (none without ``amp``)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs its loss scaled against gradient underflow; bf16 and float32 do not."""
        return torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None

    def to_dict(self) -> dict:
        """How the run was produced, for run.json, config.json and metrics.json."""
        return {
            "device": str(self.device.type),
            "amp": self.amp,
            "world_size": self.world_size,
            "backend": self.backend,
            "threads_per_process": torch.get_num_threads(),
        }


def setup(device: str = "auto", amp: str | None = None) -> Context:
    """The Context of this process. Under torchrun (RANK and WORLD_SIZE in the environment)
    joins the process group: NCCL on CUDA, gloo otherwise; on CPU each rank gets the node's
    cores divided by its processes as torch threads (torchrun's default is 1), so that the
    ranks of a node do not oversubscribe it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        dev = resolve_device(device)
        check_amp(amp, dev)
        return Context(dev, amp)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    check_amp(amp, dev)
    if dev.type == "mps":
        raise TrainingError(
            f"--device {device} (mps) under torchrun: no torch.distributed backend takes MPS "
            "tensors; train on mps in one process (python -m training train), or use "
            "--device cpu under torchrun"
        )
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        backend = "nccl"
        dist.init_process_group(backend, device_id=dev)
    else:
        backend = "gloo"
        dist.init_process_group(backend)
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // per_node))
    return Context(dev, amp, rank, world, local_rank, backend)


def cleanup() -> None:
    """Leaves the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a group)."""
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process is rank 0 (or the only process): the one that writes files."""
    return rank() == 0


def barrier() -> None:
    """Waits for every rank (nothing to wait for in a single process)."""
    if world_size() > 1:
        dist.barrier()


def share(obj):
    """Rank 0's ``obj`` on every rank (any picklable object); ``obj`` itself in a single
    process. Used for what only rank 0 reads (the checkpoint, the run folder's state), so that
    ranks on other nodes need not see rank 0's files."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank; [obj] in a single process."""
    if world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: list[float]) -> list[float]:
    """Each value averaged over the ranks (float64 all-reduce); ``values`` in one process."""
    if world_size() == 1 or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def my_share(idx: np.ndarray) -> np.ndarray:
    """This rank's contiguous share of the global batch ``idx`` (np.array_split: shares differ
    in size by at most one); all of it in a single process."""
    world = world_size()
    return idx if world == 1 else np.array_split(idx, world)[rank()]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s global torch generator (dropout), rank 0's being ``seed``
    itself, so that a single process draws what it drew before distributed training existed
    and the ranks draw independent masks."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------
# BatchNorm over the whole batch, and the DDP wrapper


class SumOverRanks(torch.autograd.Function):
    """The sum over the ranks of a tensor, differentiable: every rank gets the sum y, and as
    the objective is the sum of the ranks' losses, the gradient of each rank's input is the
    sum over the ranks of the gradients of y (an all-reduce again)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GroupBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole batch over all ranks:
    the mean and the (biased, two-pass) variance from all-reduced sums; running statistics
    updated as BatchNorm2d updates them (unbiased variance, ``momentum``). Evaluation and a
    single process are BatchNorm2d itself. Same parameters and buffers: the state dict is a
    BatchNorm2d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims, c = (0, 2, 3), x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        sums = SumOverRanks.apply(torch.cat([x.sum(dim=dims), count]))
        mean, count = sums[:c] / sums[c], sums[c].detach()
        centred = x - mean.view(1, -1, 1, 1)
        var = SumOverRanks.apply((centred * centred).sum(dim=dims)) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            unbiased = var.detach() * count / (count - 1).clamp(min=1)
            self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        scale = torch.rsqrt(var + self.eps) * self.weight
        return centred * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm2d normalising over the whole distributed batch:
    PyTorch's SyncBatchNorm on CUDA, `GroupBatchNorm` elsewhere (same state dict keys)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GroupBatchNorm
    return model


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """What the training step calls: ``model`` itself in a single process, else
    DistributedDataParallel over it (rank 0's weights broadcast to all at construction;
    gradients averaged over the ranks after every backward). The model's BatchNorm layers must
    already be `sync_batchnorm`'s."""
    if ctx.world_size == 1:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)

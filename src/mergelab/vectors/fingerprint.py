"""Model fingerprints: which base model a task vector belongs to, from the tensors alone.

``fingerprint = "blake2b-128:" + hex(blake2b(v1 tag, then per tensor in name order:
name, dtype, shape, sampled bytes))``. The sample is the whole tensor when it holds at most
``BLOCKS * BLOCK_BYTES`` (64 KiB) bytes, else ``BLOCKS`` evenly spaced blocks of
``BLOCK_BYTES`` of its raw little-endian bytes (first and last block included).

It is computed by streaming (one tensor at a time, at most 64 KiB of each touched), so a
7B model costs about 20 MB of reads. It depends only on the tensors: the same weights
sharded differently, or saved with another config, give the same fingerprint, while another
dtype, an added token or a different pretraining run give another. Deviation from a full
hash: an edit confined to unsampled bytes of a large tensor goes unnoticed; the fingerprint
tells models apart, it does not prove integrity.
"""

from __future__ import annotations

import hashlib
import json

import torch

from mergelab.engine import TensorSource
from mergelab.safetensors_format import dtype_code

BLOCKS = 16
BLOCK_BYTES = 4096
_TAG = b"mergelab-fingerprint-v1\0"


def _sample(tensor: torch.Tensor) -> bytes:
    raw = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)  # (nbytes,)
    n = raw.numel()
    if n <= BLOCKS * BLOCK_BYTES:
        return raw.numpy().tobytes()
    starts = [i * (n - BLOCK_BYTES) // (BLOCKS - 1) for i in range(BLOCKS)]
    return b"".join(raw[s : s + BLOCK_BYTES].numpy().tobytes() for s in starts)


def fingerprint(source: TensorSource) -> str:
    """The fingerprint of every tensor of ``source`` (a checkpoint or any TensorSource)."""
    digest = hashlib.blake2b(_TAG, digest_size=16)
    for name in sorted(source.tensors):
        info = source.tensors[name]
        head = json.dumps([name, dtype_code(info.dtype), list(info.shape)])
        digest.update(head.encode("utf-8") + b"\0")
        digest.update(_sample(source.read(name)))
    return "blake2b-128:" + digest.hexdigest()


def short(fp: str) -> str:
    """A fingerprint shortened for tables and messages (``blake2b-128:1a2b3c4d5e6f``)."""
    return fp[: fp.index(":") + 13] if ":" in fp else fp[:12]

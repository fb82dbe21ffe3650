"""Batch scaling: images/s of one forward pass at batch 1 and batch 32, in process.

Adaptive batching can only beat one-forward-per-request serving by what batching gains in
the forward pass itself. This measures that ceiling for resnet18 at 224 px on this machine,
with the serving thread count, in FP32 and in the variants a CPU could use (channels-last
memory, bfloat16 autocast). Writes JSON.

    python benchmarks/batch_scaling.py [--threads 1] [--images 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from aidetector.models.factory import build_network

RESULTS = Path(__file__).parent / "results" / "batch_scaling.json"


def images_per_second(
    net: nn.Module, batch: int, images: int, channels_last: bool, bf16: bool, size: int
) -> float:
    """Forward passes over about `images` images after one warm-up pass."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory)
    inputs = torch.randn(batch, 3, size, size).to(memory_format=memory)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(inputs)
        done = 0
        start = time.perf_counter()
        while done < images:
            net(inputs)
            done += batch
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="serve.cpu_threads")
    parser.add_argument("--images", type=int, default=64, help="images timed per point")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = build_network("resnet18", img_size=args.size).eval()
    points = []
    for channels_last in (False, True):
        for bf16 in (False, True):
            single = images_per_second(net, 1, args.images // 2, channels_last, bf16, args.size)
            batched = images_per_second(net, 32, args.images, channels_last, bf16, args.size)
            point = {
                "channels_last": channels_last,
                "bf16_autocast": bf16,
                "batch1_images_per_s": round(single, 2),
                "batch32_images_per_s": round(batched, 2),
                "batching_gain": round(batched / single, 3),
            }
            points.append(point)
            print(json.dumps(point), flush=True)
    result = {
        "what": "resnet18 forward, batch 32 vs batch 1, images/s in process (no HTTP)",
        "image_size": args.size,
        "threads": args.threads,
        "points": points,
        "max_batching_gain": max(p["batching_gain"] for p in points),
        "environment": {
            "cpus": len(os.sched_getaffinity(0)),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "torch": torch.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"max batching gain {result['max_batching_gain']}x -> {args.out}")


if __name__ == "__main__":
    main()

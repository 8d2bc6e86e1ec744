"""Frames per second of the X2Face model on this machine: training steps and inference.

    python benchmarks/model_throughput.py [--device cpu|cuda] [--sizes 256:64,128:32]

Uses random tensors, so it measures the network alone (no data loading). Prints a table.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from x2face_edit.model import ModelConfig, X2Face, count_parameters


def frames_per_second(run, frames_per_call: int, *, warmup: int, seconds: float, device: torch.device) -> float:
    for _ in range(warmup):
        run()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 2:
            return calls * frames_per_call / elapsed


def measure(config: ModelConfig, batch: int, device: torch.device, seconds: float, bf16: bool) -> dict:
    model = X2Face(config).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    frames = torch.rand(batch, 3, config.resolution, config.resolution, device=device).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step() -> None:
        with autocast:
            loss = F.l1_loss(model(frames.unsqueeze(1), frames).float(), frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.inference_mode()
    def generate() -> None:
        with autocast:
            model(frames.unsqueeze(1), frames)

    @torch.inference_mode()
    def drive() -> None:
        with autocast:
            model.decode(model.driving_vector(frames))

    model.train()
    train_fps = frames_per_second(train_step, batch, warmup=1, seconds=seconds, device=device)
    model.eval()
    return {
        "model": f"{config.resolution}/w{config.width}",
        "params_M": count_parameters(model) / 1e6,
        "train_fps": train_fps,
        "generate_fps": frames_per_second(generate, batch, warmup=1, seconds=seconds, device=device),
        "driving_fps": frames_per_second(drive, batch, warmup=1, seconds=seconds, device=device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="256:64,128:32", help="resolution:width pairs")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="time spent on each measurement")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, batch {args.batch}, threads {torch.get_num_threads()}, bf16 {args.bf16}")
    print(f"{'model':<10}{'params (M)':>12}{'train f/s':>12}{'generate f/s':>14}{'driving f/s':>13}")
    for pair in args.sizes.split(","):
        resolution, width = (int(v) for v in pair.split(":"))
        row = measure(ModelConfig(resolution, width), args.batch, device, args.seconds, args.bf16)
        print(f"{row['model']:<10}{row['params_M']:>12.1f}{row['train_fps']:>12.2f}{row['generate_fps']:>14.2f}{row['driving_fps']:>13.2f}")


if __name__ == "__main__":
    main()

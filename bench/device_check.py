"""Accelerator check: do the models' fast paths keep their vectors within tolerance?

    python bench/device_check.py [--aisfx-checkpoint PATH]

Runs on a machine with CUDA (the lent GPU); needs only torch, numpy and transformers, so
it also runs where Sonarium's other dependencies are absent. Prints JSON: minimum cosine
between CPU float32 and GPU vectors (float32, and the reduced precision the product uses:
bf16 autocast for aisfx, float16 weights for CLAP), and GPU throughput. CLAP uses the
real laion/clap-htsat-unfused-sized config with random weights (no hub access here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cosine_min(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float()).min())


def check_aisfx(checkpoint: str | None) -> dict:
    from engine.models.aisfx.features import embed_blocks
    from engine.models.aisfx.model import load_aisfx

    cpu = load_aisfx(checkpoint, device="cpu")
    gpu = load_aisfx(checkpoint, device="cuda")
    blocks = torch.rand(64, 100, 96, generator=torch.Generator().manual_seed(0))
    ref = embed_blocks(cpu, blocks, batch_size=16)
    fp32 = embed_blocks(gpu, blocks, batch_size=64)
    bf16 = embed_blocks(gpu, blocks, batch_size=64, bfloat16=True)
    big = torch.rand(4096, 100, 96)
    embed_blocks(gpu, big[:256], batch_size=256, bfloat16=True)
    torch.cuda.synchronize()
    start = time.perf_counter()
    embed_blocks(gpu, big, batch_size=512, bfloat16=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "cosine_min_gpu_fp32_vs_cpu": cosine_min(ref, fp32),
        "cosine_min_gpu_bf16_vs_cpu": cosine_min(ref, bf16),
        "gpu_blocks_per_second_bf16": round(4096 / seconds, 1),
        # A block advances 50 frames of 1024 samples at 44.1 kHz.
        "gpu_audio_seconds_per_second_bf16": round(4096 * 50 * 1024 / 44100 / seconds, 1),
    }


def check_clap() -> dict:
    from transformers import ClapConfig, ClapModel

    from engine.models.clap.features import UNFUSED, log_mel

    config = ClapConfig()
    config.projection_dim = 512
    torch.manual_seed(0)
    model = ClapModel(config).eval()
    rng = np.random.default_rng(0)
    windows = torch.from_numpy((0.1 * rng.standard_normal((8, 480000))).astype(np.float32))
    mel = log_mel(windows, UNFUSED, dtype=torch.float32)
    longer = torch.zeros(len(mel), 1, dtype=torch.bool)
    tokens = {"input_ids": torch.randint(5, 1000, (8, 12)), "attention_mask": torch.ones(8, 12)}
    with torch.inference_mode():
        ref_audio = model.get_audio_features(input_features=mel, is_longer=longer)
        ref_text = model.get_text_features(**tokens)
        out = {}
        for label, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            gpu = model.to("cuda", dtype=dtype)
            audio = gpu.get_audio_features(
                input_features=mel.to("cuda", dtype=dtype), is_longer=longer.cuda()
            )
            text = gpu.get_text_features(**{k: v.cuda() for k, v in tokens.items()})
            out[f"audio_cosine_min_gpu_{label}_vs_cpu"] = cosine_min(ref_audio, audio.cpu())
            out[f"text_cosine_min_gpu_{label}_vs_cpu"] = cosine_min(ref_text, text.cpu())
        batch = mel.repeat(8, 1, 1, 1).to("cuda", dtype=torch.float16)
        flags = torch.zeros(len(batch), 1, dtype=torch.bool, device="cuda")
        gpu.get_audio_features(input_features=batch, is_longer=flags)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            gpu.get_audio_features(input_features=batch, is_longer=flags)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / 5
    out["gpu_windows_per_second_fp16"] = round(len(batch) / seconds, 1)
    out["gpu_audio_seconds_per_second_fp16"] = round(len(batch) * 10 / seconds, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aisfx-checkpoint")
    args = parser.parse_args()
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    result["aisfx"] = check_aisfx(args.aisfx_checkpoint)
    result["clap"] = check_clap()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

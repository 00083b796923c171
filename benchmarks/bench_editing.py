"""Editing cost on this CPU: seconds per denoising step of the full-size SD 1.5 UNet.

Random weights, the real architecture (UNet2DConditionModel with the SD 1.5 config, 8 input
channels as in InstructPix2Pix): the compute is the same as with trained weights. Measured:

- one step at 512 px with 3 guidance branches (InstructPix2Pix: text+image, image only, none),
  2 branches (ordinary classifier-free guidance) and 1 (guidance-free: LCM / guidance 1);
- the same at 384 and 256 px; the VAE encode + decode of one photo at 256 and at 512 px (both measured);
- from these: the 20-step default vs 4-step LCM ratio, and the 8-photo x 3-value series time on
  this CPU for the default and the fast setting (GPU figures: benchmarks/bench_gpu.py, measured).

One timed step per setting keeps the run to a few minutes; read ratios, not absolute seconds
(the machine is shared). `step_s_*` is this process's CPU time / threads (robust to other load);
`step_wall_s_*` the wall clock. `python -m benchmarks.bench_editing`
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from benchmarks.common import matmul_gflops, peak_rss_mb, save

PHOTOS, VALUES = 8, 3
DEFAULT_STEPS, LCM_STEPS = 20, 4
# GPU figures are measured, not assumed: benchmarks/bench_gpu.py on a CUDA machine.


def sd15_unet(in_channels: int = 8):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=64, in_channels=in_channels, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()


def sd15_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()


def timed(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds / threads). On a shared machine the second is the better
    estimate of an unloaded run: other processes stretch wall time, not this one's CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, (time.process_time() - cpu) / torch.get_num_threads()


def matmul_gflops_cpu_time(size: int = 1024, repeats: int = 10) -> float:
    """The machine's matmul rate measured like the steps (CPU time / threads), so the two compare."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    _, cpu = timed(lambda: [torch.mm(a, b) for _ in range(repeats)])
    return 2 * size**3 * repeats / cpu / 1e9


def unet_step(unet, batch: int, pixels: int, count_flops: bool = False) -> tuple[float, float, float]:
    """(wall s, cpu s, GFLOP) of one denoising step with ``batch`` guidance branches."""
    from torch.utils.flop_counter import FlopCounterMode

    latent = pixels // 8
    sample = torch.randn(batch, unet.config.in_channels, latent, latent)
    text = torch.randn(batch, 77, 768)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), (counter if count_flops else contextlib.nullcontext()):
        wall, cpu = timed(lambda: unet(sample, torch.tensor(500), encoder_hidden_states=text))
    return wall, cpu, counter.get_total_flops() / 1e9 if count_flops else math.nan


def vae_round_trip(vae, pixels: int) -> tuple[float, float]:
    """Encode the photo once and decode the result once: the per-edit VAE cost."""
    with torch.inference_mode():
        return timed(lambda: vae.decode(vae.encode(torch.randn(1, 3, pixels, pixels)).latent_dist.mode()))


def vae_figures(vae) -> dict[str, float]:
    """The VAE round trip measured at 256 and at 512 px (not scaled), and their ratio."""
    vae_round_trip(vae, 64)  # warm-up
    figures: dict[str, float] = {}
    for pixels in (256, 512):
        wall, cpu = vae_round_trip(vae, pixels)
        figures[f"vae_encode_decode_s_{pixels}px"] = cpu
        figures[f"vae_encode_decode_wall_s_{pixels}px"] = wall
    figures["ratio_vae_512px_vs_256px"] = figures["vae_encode_decode_s_512px"] / figures["vae_encode_decode_s_256px"]
    return figures


def main() -> None:
    figures: dict[str, float | str] = {
        "threads": torch.get_num_threads(),
        "matmul_gflops": matmul_gflops(),
        "matmul_gflops_cpu_time": matmul_gflops_cpu_time(),
    }
    unet = sd15_unet()
    figures["unet_params_M"] = sum(p.numel() for p in unet.parameters()) / 1e6
    unet_step(unet, 1, 128)  # warm-up: first-call allocations and kernel choices
    # Smallest first: peak RSS only grows, so each reading is (close to) that setting's own peak.
    for pixels, batch in [(256, 3), (384, 1), (384, 3), (512, 1), (512, 2), (512, 3)]:
        wall, cpu, gflop = unet_step(unet, batch, pixels, count_flops=(pixels, batch) == (512, 1))
        figures[f"step_wall_s_{pixels}px_{batch}branch"] = wall
        figures[f"step_s_{pixels}px_{batch}branch"] = cpu
        figures[f"peak_rss_mb_after_{pixels}px_{batch}branch"] = peak_rss_mb()
        if not math.isnan(gflop):
            figures["unet_gflop_per_step_512px_1branch"] = gflop
            figures["unet_achieved_vs_matmul_512px_1branch"] = gflop / cpu / figures["matmul_gflops_cpu_time"]
    del unet
    vae = sd15_vae()
    figures.update(vae_figures(vae))
    figures["peak_rss_mb_final"] = peak_rss_mb()
    figures.update(estimates(figures))
    save("editing", figures)


def estimates(f: dict) -> dict[str, float | str]:
    """Series time from the measured steps (8 photos x 3 values = 24 edits)."""
    edits = PHOTOS * VALUES
    vae = f["vae_encode_decode_s_512px"]
    default_edit = DEFAULT_STEPS * f["step_s_512px_3branch"] + vae  # InstructPix2Pix, 20 steps, 3 branches
    lcm_edit = LCM_STEPS * f["step_s_512px_1branch"] + vae  # LCM-LoRA, 4 steps, guidance-free
    lcm_edit_384 = LCM_STEPS * f["step_s_384px_1branch"] + vae * (384 / 512) ** 2
    ip2p_384_10 = 10 * f["step_s_384px_3branch"] + vae * (384 / 512) ** 2  # keeps image guidance
    return {
        "ratio_3branch_vs_1branch_512px": f["step_s_512px_3branch"] / f["step_s_512px_1branch"],
        "ratio_2branch_vs_1branch_512px": f["step_s_512px_2branch"] / f["step_s_512px_1branch"],
        "ratio_512px_vs_384px_3branch": f["step_s_512px_3branch"] / f["step_s_384px_3branch"],
        "ratio_512px_vs_256px_3branch": f["step_s_512px_3branch"] / f["step_s_256px_3branch"],
        "ratio_default20x3_vs_lcm4x1_per_edit": default_edit / lcm_edit,
        "edit_s_default_ip2p_20steps_512px": default_edit,
        "edit_s_lcm_4steps_512px": lcm_edit,
        "series_min_cpu_default_ip2p_20steps_512px": edits * default_edit / 60,
        "series_min_cpu_ip2p_10steps_384px": edits * ip2p_384_10 / 60,
        "series_min_cpu_lcm_4steps_512px": edits * lcm_edit / 60,
        "series_min_cpu_lcm_4steps_384px": edits * lcm_edit_384 / 60,
    }


if __name__ == "__main__":
    main()

"""Editing cost on this CPU: seconds per denoising step of the full-size SD 1.5 UNet.

Random weights, the real architecture (UNet2DConditionModel with the SD 1.5 config, 8 input
channels as in InstructPix2Pix): the compute is the same as with trained weights. Measured:

- one step at 512 px with 3 guidance branches (InstructPix2Pix: text+image, image only, none),
  2 branches (ordinary classifier-free guidance) and 1 (guidance-free: LCM / guidance 1);
- the same at 384 and 256 px; the VAE encode + decode of one 512 px photo;
- from these: the 20-step default vs 4-step LCM ratio, and the 8-photo x 3-value series time on
  this CPU for the default and the fast setting, and on a GPU from a stated published figure.

One timed step per setting keeps the run to a few minutes; read ratios, not absolute seconds
(the machine is shared). `python -m benchmarks.bench_editing`
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import matmul_gflops, peak_rss_mb, save

PHOTOS, VALUES = 8, 3
DEFAULT_STEPS, LCM_STEPS = 20, 4
# Assumption for the GPU estimate: SD 1.5 at 512 px in fp16 on an A100 runs ~20 denoising steps
# per second with classifier-free guidance (batch 2), i.e. ~0.05 s a batch-2 step (diffusers'
# published A100 fp16 timings); a batch-3 step taken as 1.5x that, batch 1 as 0.5x.
GPU_BATCH2_STEP_SECONDS = 0.05
GPU_VAE_SECONDS = 0.05


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


def unet_step_seconds(unet, batch: int, pixels: int) -> float:
    latent = pixels // 8
    sample = torch.randn(batch, unet.config.in_channels, latent, latent)
    text = torch.randn(batch, 77, 768)
    timestep = torch.tensor(500)
    with torch.inference_mode():
        start = time.perf_counter()
        unet(sample, timestep, encoder_hidden_states=text)
        return time.perf_counter() - start


def unet_step_gflop(unet, pixels: int) -> float:
    """FLOPs of one batch-1 step, counted by torch (the yardstick for utilisation)."""
    from torch.utils.flop_counter import FlopCounterMode

    latent = pixels // 8
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(torch.randn(1, unet.config.in_channels, latent, latent), torch.tensor(500),
             encoder_hidden_states=torch.randn(1, 77, 768))
    return counter.get_total_flops() / 1e9


def vae_seconds(vae, pixels: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        latents = vae.encode(torch.randn(1, 3, pixels, pixels)).latent_dist.mode()
        vae.decode(latents)
        return time.perf_counter() - start


def main() -> None:
    figures: dict[str, float | str] = {"threads": torch.get_num_threads(), "matmul_gflops": matmul_gflops()}
    unet = sd15_unet()
    figures["unet_params_M"] = sum(p.numel() for p in unet.parameters()) / 1e6
    unet_step_seconds(unet, 1, 256)  # warm-up: first-call allocations and kernel choices
    # Smallest first: peak RSS only grows, so each reading is (close to) that setting's own peak.
    for pixels, batch in [(256, 1), (256, 3), (384, 1), (384, 3), (512, 1), (512, 2), (512, 3)]:
        seconds = unet_step_seconds(unet, batch, pixels)
        figures[f"step_s_{pixels}px_{batch}branch"] = seconds
        figures[f"peak_rss_mb_after_{pixels}px_{batch}branch"] = peak_rss_mb()
    gflop = unet_step_gflop(unet, 512)
    figures["unet_gflop_per_step_512px_1branch"] = gflop
    figures["unet_mfu_512px_1branch"] = gflop / figures["step_s_512px_1branch"] / figures["matmul_gflops"]
    del unet
    vae = sd15_vae()
    figures["vae_encode_decode_s_512px"] = vae_seconds(vae, 512)
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
    gpu_edit = DEFAULT_STEPS * 1.5 * GPU_BATCH2_STEP_SECONDS + GPU_VAE_SECONDS
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
        "series_min_gpu_default_ip2p_20steps_512px": edits * gpu_edit / 60,
        "gpu_assumption": f"A100 fp16 SD1.5 512px: {GPU_BATCH2_STEP_SECONDS}s a batch-2 step, x1.5 for 3 branches",
    }


if __name__ == "__main__":
    main()

"""An encoder's text side alone: what search by meaning needs in every gallery worker.

A phrase is embedded by the text tower only. The offline encoder's image side (EfficientNet and
its ONNX export, the 1,000 class-name embeddings) took about 25 s and 500 MB in each worker of
`alienstay serve`, and search never uses it; its text side is all-MiniLM-L6-v2 alone, with the
full encoder's model id and revision, so the gallery's revision check still holds. A CLIP or
SigLIP is loaded whole and its image tower dropped (transformers loads the pair from one file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class OfflineTextSide:
    """The offline encoder's `encode_texts`, without its image classifier."""

    text_model: object | None  # PyTorch's MiniLM; None once ONNX Runtime has taken over (`fast`)
    model_id: str
    revision: str
    logit_scale: float
    fast: object | None = field(default=None, repr=False)  # ONNX Runtime's MiniLM, when it agrees with PyTorch
    evidence: object | None = field(default=None, repr=False)  # the whole encoder's, for its revision
    class_names: list[str] = field(default_factory=list, repr=False)

    def use_calibration(self, evidence, word_head=None, key: str = "") -> None:
        """The revision the whole encoder takes under a calibration profile (`OfflineEncoder.use_calibration`):
        the phrase is embedded the same, and the gallery compares revisions with the tag stage's."""
        from alienstay.encoders import offline

        self.evidence = evidence
        spec = offline.IMAGE_MODELS[offline.IMAGE_MODEL]
        base = offline._revision(self.class_names, offline.DEFAULT_TOP_T, spec, evidence, self.logit_scale)
        self.revision = f"{base};calibration-{key}" if key else base

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        from alienstay.encoders.offline import embed_sentences

        if self.fast is not None:
            return self.fast(texts)
        return embed_sentences(self.text_model, texts)


def load_offline_text(model: str | None = None, device: str = "cpu", dtype: str = "float32") -> OfflineTextSide:
    """The text side of `load_offline_encoder()` (default image model, top T, scale and evidence)."""
    from alienstay.encoders import offline

    spec = offline.IMAGE_MODELS[offline.IMAGE_MODEL]
    offline._check_offline_packages(spec)  # the same "pip install 'alienstay[offline]'" message
    side = OfflineTextSide(offline.load_text_model(device), f"offline:{spec.name}+{offline.TEXT_MODEL}", "",
                           offline.DEFAULT_LOGIT_SCALE, class_names=offline.load_imagenet_class_names())  # fmt: skip
    side.use_calibration(offline.CONSE_EVIDENCE)
    calibrate_like_the_whole_encoder(side)
    if device == "cpu":  # a third of PyTorch's CPU time a phrase (encoders/query_onnx.py), used only if it agrees
        from alienstay.encoders.query_onnx import onnx_sentence_encoder

        side.fast = onnx_sentence_encoder(side.text_model, side.encode_texts, torch.get_num_threads())
        if side.fast is not None:
            side.text_model = None  # its weights would only sit beside the session's copy (~90 MB a worker)
    return side


def calibrate_like_the_whole_encoder(side: OfflineTextSide) -> None:
    """The packaged profile's revision, as `offline.use_default_profile` gives the whole encoder (its class
    head only feeds the image side, which search never runs, so it is not loaded here)."""
    from importlib import resources
    from pathlib import Path

    from alienstay.encoders import offline
    from alienstay.vocabulary.profile import load_profile

    path = resources.files("alienstay").joinpath("data", offline.DEFAULT_PROFILE)
    if not path.is_file():
        return
    profile = load_profile(Path(str(path)))
    if profile.model_id == side.model_id:
        side.use_calibration(profile.evidence(side.evidence), None, profile.key)


def load_hf_text(model: str | None, device: str = "cpu", dtype: str = "float32"):
    """A CLIP / SigLIP encoder with its image tower dropped after loading (CLIP ViT-B/32: 88 M of its
    151 M parameters); `encode_texts`, the model id and the revision are the whole encoder's."""
    import gc

    from alienstay.encoders.hf import load_hf_encoder

    encoder = load_hf_encoder(model, device=device, dtype=dtype)
    for name in ("vision_model", "visual_projection"):  # the image side; get_text_features never runs it
        if isinstance(getattr(encoder.model, name, None), torch.nn.Module):
            setattr(encoder.model, name, None)
    gc.collect()  # the tower's tensors go back now, not at some later collection
    encoder.text_only = True
    return encoder

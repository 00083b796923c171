"""MiniLM's phrase embedding through ONNX Runtime: what a gallery worker runs for a search by meaning.

A phrase of a few words through all-MiniLM-L6-v2 costs ~13 ms of CPU in eager PyTorch (with
sentence-transformers' `encode` around it) and ~4.5 ms in ONNX Runtime on one thread
(`python -m benchmarks gallery`'s mix spends a fifth of its requests there). The transformer, its
mean pooling and the L2 normalisation are exported together by the TorchScript exporter (as the
offline classifier is: encoders/classifier_runtime.py), once, in a child process, into the user's
cache; the session is used only when it agrees with PyTorch on probe phrases; otherwise PyTorch
answers, as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("alienstay")

MAX_DIFF = 1e-5  # largest difference from PyTorch's unit vector the session may show on the probes
PROBES = ("a hotel room", "a pool at night with lamps", "a bright breakfast room by the sea with plants and a view")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class MeanPooled(torch.nn.Module):
    """A BERT's last hidden state, mean-pooled over the real tokens and L2-normalised (sentence-transformers' recipe)."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


class OnnxSentenceEncoder:
    """Phrases -> (N, D) unit vectors through an ONNX Runtime session of a sentence-transformers BERT."""

    def __init__(self, sentence_model, threads: int = 1) -> None:
        import onnxruntime

        self.tokenizer, self.max_length = sentence_model.tokenizer, int(sentence_model.max_seq_length)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads leave the core
        # From a file, not from bytes: a session made from bytes keeps them (a second 90 MB copy a worker).
        self.session = onnxruntime.InferenceSession(str(exported_file(sentence_model)), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feed = {name: np.asarray(tokens[name], np.int64) for name in INPUTS}
        (vectors,) = self.session.run(None, feed)
        return torch.from_numpy(vectors)


def export(sentence_model, tokenizer) -> bytes:
    """The sentence model's transformer with pooling and normalisation as ONNX bytes (batch and length dynamic)."""
    bert = sentence_model[0].auto_model.eval()
    probe = tokenizer(["a probe phrase"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(MeanPooled(bert), tuple(probe[name] for name in INPUTS), buffer, dynamo=False,
                          input_names=list(INPUTS), output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=17)
    return buffer.getvalue()


def cache_folder() -> Path:
    """Where exported text models are kept between starts: $ALIENSTAY_CACHE_DIR, else the user's cache."""
    root = os.environ.get("ALIENSTAY_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alienstay"
    return Path(root) / "query-onnx"


def exported_file(sentence_model) -> Path:
    """The model's ONNX file, exported once by a child process and kept, keyed by the model folder and the
    exporting packages' versions: the TorchScript exporter leaves ~60 MB behind in the process that ran it,
    and a gallery worker should not carry that (nor spend the 4 s) at every start."""
    folder = str(Path(sentence_model[0].auto_model.name_or_path).resolve())
    versions = [f"{name}=={metadata.version(name)}" for name in ("torch", "transformers", "sentence-transformers", "onnxruntime")]
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*") if p.is_file())
    key = hashlib.sha256(json.dumps([folder, files, versions, 1]).encode()).hexdigest()[:16]  # new weights: a new file
    path = cache_folder() / f"{key}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")  # two workers may export at once: each its own
        code = "import sys; from alienstay.encoders.query_onnx import export_folder; export_folder(sys.argv[1], sys.argv[2])"
        try:
            subprocess.run([sys.executable, "-c", code, folder, str(partial)], check=True, capture_output=True)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)  # a failed export leaves nothing half-written behind
    return path


def export_folder(folder: str, target: str) -> None:
    """(In the child process) the sentence-transformers model in `folder` exported to `target`."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    Path(target).write_bytes(export(model, model.tokenizer))


def onnx_sentence_encoder(sentence_model, reference, threads: int = 1) -> OnnxSentenceEncoder | None:
    """The ONNX Runtime encoder when it can be built and agrees with `reference` (PyTorch's phrases -> vectors)
    on the probe phrases; None (PyTorch keeps answering, the reason logged) otherwise."""
    try:
        encoder = OnnxSentenceEncoder(sentence_model, threads)
        diff = float((encoder(list(PROBES)) - reference(list(PROBES))).abs().max())
    except Exception as error:  # onnxruntime missing, or the export failed: PyTorch still embeds
        log.info("search by meaning: ONNX Runtime unavailable for the text model (%s); PyTorch embeds the phrases", error)
        return None
    if diff > MAX_DIFF:
        log.warning("search by meaning: ONNX Runtime differs from PyTorch by %.2g on the probes; PyTorch embeds the phrases", diff)
        return None
    return encoder

"""Where models run and in what precision: the one list of dtypes every loader checks against."""

from __future__ import annotations

# float32 everywhere; bfloat16 halves memory (accelerators, recent CPUs); int8 is dynamic
# quantisation of the Linear layers, a CPU option. An encoder or captioner entry says which
# of these it supports.
DTYPES = ("float32", "bfloat16", "int8")


def check_dtype(dtype: str, supported: tuple[str, ...] = DTYPES, what: str = "this model") -> str:
    """`dtype` if it is known and `supported`; otherwise a ValueError that names the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    if dtype not in supported:
        raise ValueError(f"--dtype {dtype}: {what} runs in {', '.join(supported)} only; drop --dtype or pass one of those.")
    return dtype

"""LLM decoders of the study as data, their exact prefill FLOPs, and random-weight builders.

Configs: the Qwen2 model cards (``config.json`` of Qwen/Qwen2-0.5B, -1.5B, -7B) and Vicuna-7B v1.5
(= Llama-2-7B's config).
Prefill is what a VLM pays before the first token: one forward over the visual (and text)
tokens, keeping only the last position's logits. The specs are torch-free (reports read them);
torch and transformers are imported only to build a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastvitsearch.spec import SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class LLMSpec:
    """A decoder-only LLM with SwiGLU MLPs and RMSNorm (Qwen2 and Llama families)."""

    name: str
    family: str  # "qwen2" | "llama": which transformers class builds it
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool

    def __post_init__(self) -> None:
        if self.family not in ("qwen2", "llama"):
            raise SpecError("llm.family", f"unknown family {self.family!r}; one of 'qwen2', 'llama'")
        for field in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(f"llm.{field}", f"must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise SpecError("llm.hidden", f"{self.hidden} is not divisible by heads={self.heads}")
        if self.heads % self.kv_heads:
            raise SpecError("llm.kv_heads", f"heads={self.heads} is not a multiple of kv_heads={self.kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def params(self) -> int:
        """Parameter count (counted from the config), embeddings included once if tied."""
        d, kv = self.hidden, self.kv_dim
        attention = 2 * d * d + 2 * d * kv + (d + 2 * kv if self.qkv_bias else 0)
        per_layer = attention + 3 * d * self.intermediate + 2 * d
        embeddings = self.vocab * d * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + d

    def prefill_flops(self, tokens: int) -> int:
        """Matmul FLOPs (2 per MAC) of a batch-1 prefill over ``tokens`` positions.

        Projections ``2d^2 + 2d*kv_dim``, SwiGLU ``3dI``, attention ``QK^T`` and ``AV`` as kernels
        compute them (full square, ``2 T^2 d`` MACs per layer), and the last position's logits.
        """
        d, t = self.hidden, tokens
        per_token = 2 * d * d + 2 * d * self.kv_dim + 3 * d * self.intermediate
        return 2 * t * self.layers * per_token + 4 * t * t * d * self.layers + 2 * d * self.vocab

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hf_config(self):
        """The ``transformers`` config that builds this LLM."""
        from transformers import LlamaConfig, Qwen2Config

        common = dict(
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            vocab_size=self.vocab,
            tie_word_embeddings=self.tied_embeddings,
        )
        if self.family == "qwen2":
            return Qwen2Config(**common)
        return LlamaConfig(**common, attention_bias=self.qkv_bias)


LLM_PRESETS: dict[str, LLMSpec] = {
    s.name: s
    for s in (
        LLMSpec("qwen2_0_5b", "qwen2", 24, 896, 14, 2, 4864, 151936, True, True),
        LLMSpec("qwen2_1_5b", "qwen2", 28, 1536, 12, 2, 8960, 151936, True, True),
        LLMSpec("qwen2_7b", "qwen2", 28, 3584, 28, 4, 18944, 152064, False, True),
        LLMSpec("vicuna_7b", "llama", 32, 4096, 32, 32, 11008, 32000, False, False),
        # test-size decoder: same structure, milliseconds per prefill
        LLMSpec("tiny_llm", "qwen2", 2, 64, 4, 2, 128, 512, True, True),
    )
}


def resolve_llm(value: str | dict[str, Any] | LLMSpec) -> LLMSpec:
    """A preset name, ``{preset: name}`` or a full config mapping -> :class:`LLMSpec`."""
    if isinstance(value, LLMSpec):
        return value
    if isinstance(value, str):
        if value not in LLM_PRESETS:
            raise SpecError("llm", f"unknown LLM {value!r}; known: {', '.join(LLM_PRESETS)}")
        return LLM_PRESETS[value]
    if isinstance(value, dict):
        if value.get("preset"):
            return resolve_llm(value["preset"])
        known = {f.name for f in dataclasses.fields(LLMSpec)}
        unknown = sorted(set(value) - known - {"preset"})
        if unknown:
            raise SpecError(f"llm.{unknown[0]}", f"unknown field; known: {sorted(known)}")
        try:
            return LLMSpec(**{k: v for k, v in value.items() if k in known})
        except TypeError as err:
            raise SpecError("llm", str(err)) from err
    raise SpecError("llm", f"expected a preset name or a config mapping, got {value!r}")


def build_llm(spec: LLMSpec, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> nn.Module:
    """A random-weight causal LM, built without ever materialising a default init.

    Built on ``meta``, moved with ``to_empty`` and filled with small normal weights (unit
    RMSNorm scales). ``to_empty`` leaves the rotary ``inv_freq`` buffers uninitialised, which
    would silently scramble positions, so the rotary embedding is re-created on the device.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from fastvitsearch.random_weights import fill_tiled_, random_block

    dtype = dtype or torch.float32
    config = spec.hf_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model = model.to_empty(device=device).eval()
    # one block of random values tiled over every weight (fastvitsearch.random_weights): a prefill's
    # time does not depend on the values, and copying is ~10x faster than drawing 1.5B random numbers
    block = random_block(device, dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                fill_tiled_(param, block, 0.03)
    with torch.device(device):
        model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    return model


def prefill(model: nn.Module, embeddings: torch.Tensor) -> torch.Tensor:
    """One prefill over input embeddings ``[B, T, hidden]``; returns the last position's logits."""
    return model(inputs_embeds=embeddings, use_cache=False, logits_to_keep=1).logits

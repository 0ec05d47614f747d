"""The model's hyper-parameters: one frozen, validated args model and its two presets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsynth.errors import ConfigError


class ModelArgs(BaseModel):
    """Shapes of a DeepSeek-V3.2-style model (MLA + lightning indexer + optional MoE).

    The defaults are the tiny CPU model: about 1M parameters, trainable in minutes on two
    cores. `ModelArgs.deepseek_like()` gives the attention shapes of DeepSeek-V3.2 for
    benchmarks; it is far too large to instantiate whole.

    Attributes:
        vocab_size: token vocabulary (the default is `model.tokenizer.VOCAB_SIZE`).
        d_model: hidden width.
        n_layers: transformer blocks.
        n_heads: attention heads.
        q_lora_rank: width of the query latent (shared by MLA and the indexer queries).
        kv_lora_rank: width of the KV latent, the per-token cache and the value in MQA mode.
        qk_nope_head_dim: per-head query/key width without position.
        qk_rope_head_dim: per-head query/key width carrying RoPE (decoupled, shared key).
        v_head_dim: per-head value width.
        inter_dim: hidden width of the dense feed-forward layers.
        index_n_heads: lightning-indexer heads.
        index_head_dim: lightning-indexer query/key width (its first qk_rope_head_dim
            columns carry RoPE).
        index_topk: keys each query attends to in sparse mode.
        n_routed_experts: routed experts per MoE layer.
        n_activated_experts: routed experts each token uses.
        n_shared_experts: shared experts (one MLP of n_shared × moe_inter_dim) every token uses.
        moe_inter_dim: hidden width of one expert.
        moe_layers: indices of the layers whose feed-forward is MoE; the others are dense.
        rope_theta: RoPE base.
        max_seq_len: longest sequence (size of the RoPE tables).
        norm_eps: RMSNorm epsilon.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(267, ge=1)  # model.tokenizer: 256 bytes + 11 special tokens
    d_model: int = Field(128, ge=1)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    q_lora_rank: int = Field(64, ge=1)
    kv_lora_rank: int = Field(32, ge=1)
    qk_nope_head_dim: int = Field(16, ge=1)
    qk_rope_head_dim: int = Field(16, ge=2)
    v_head_dim: int = Field(16, ge=1)
    inter_dim: int = Field(256, ge=1)
    index_n_heads: int = Field(4, ge=1)
    index_head_dim: int = Field(32, ge=2)
    index_topk: int = Field(64, ge=1)
    n_routed_experts: int = Field(4, ge=0)
    n_activated_experts: int = Field(2, ge=0)
    n_shared_experts: int = Field(1, ge=0)
    moe_inter_dim: int = Field(128, ge=1)
    moe_layers: tuple[int, ...] = (2, 3)
    rope_theta: float = Field(10000.0, gt=0)
    max_seq_len: int = Field(1024, ge=1)
    norm_eps: float = Field(1e-6, gt=0)

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width, nope + rope."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @model_validator(mode="after")
    def _consistent(self) -> ModelArgs:
        problems = []
        if self.qk_rope_head_dim % 2:
            problems.append(f"qk_rope_head_dim must be even, got {self.qk_rope_head_dim}")
        if self.index_head_dim < self.qk_rope_head_dim:
            problems.append(
                f"index_head_dim ({self.index_head_dim}) must be at least qk_rope_head_dim "
                f"({self.qk_rope_head_dim}), whose columns carry RoPE"
            )
        bad_layers = [i for i in self.moe_layers if not 0 <= i < self.n_layers]
        if bad_layers or len(set(self.moe_layers)) != len(self.moe_layers):
            problems.append(
                f"moe_layers must be distinct indices in 0…{self.n_layers - 1}, "
                f"got {list(self.moe_layers)}"
            )
        if self.moe_layers and not 1 <= self.n_activated_experts <= self.n_routed_experts:
            problems.append(
                f"MoE layers need 1 ≤ n_activated_experts ({self.n_activated_experts}) ≤ "
                f"n_routed_experts ({self.n_routed_experts})"
            )
        if problems:
            raise ConfigError("invalid model args: " + "; ".join(problems))
        return self

    @classmethod
    def tiny(cls) -> ModelArgs:
        """The default: the bundled CPU model's shapes."""
        return cls()

    @classmethod
    def deepseek_like(cls) -> ModelArgs:
        """DeepSeek-V3.2's shapes with 64 query heads (one tensor-parallel shard of 128)."""
        return cls(
            vocab_size=129280,
            d_model=7168,
            n_layers=61,
            n_heads=64,
            q_lora_rank=1536,
            kv_lora_rank=512,
            qk_nope_head_dim=128,
            qk_rope_head_dim=64,
            v_head_dim=128,
            inter_dim=18432,
            index_n_heads=64,
            index_head_dim=128,
            index_topk=2048,
            n_routed_experts=256,
            n_activated_experts=8,
            n_shared_experts=1,
            moe_inter_dim=2048,
            moe_layers=tuple(range(3, 61)),
            max_seq_len=131072,
        )

"""The bundled DSA policy model: DeepSeek-V3.2's architecture at small scale.

MLA with low-rank query and KV latents and decoupled RoPE; the lightning indexer and its
top-k selection; sparse attention over the selected latent entries shared by all heads
(MQA mode); dense or MoE feed-forwards that report their routing. `Transformer` runs in
dense or sparse mode; on CUDA the sparse path uses the Triton kernels of `kernels`.
"""

from model.args import ModelArgs
from model.dispatch import Backend
from model.errors import ModelInputError
from model.mla import AttentionMode
from model.transformer import Transformer, TransformerOutput

__all__ = [
    "AttentionMode",
    "Backend",
    "ModelArgs",
    "ModelInputError",
    "Transformer",
    "TransformerOutput",
]

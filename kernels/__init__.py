"""Triton kernels of DeepSeek Sparse Attention, each beside its plain-PyTorch reference.

- `indexer_logits` (module `indexer`): lightning-indexer logits
  I(t,s) = Σ_j w(t,j)·ReLU(q(t,j)·k(s)), causal, for a chunk of query rows.
- `causal_topk` (module `topk`): the top-k visible keys of each row of a logits chunk.
- `indexer_topk` (module `selection`): both, streaming over chunks of query rows.
- `sparse_attention` (modules `sparse_mla`, `sparse_mla_backward`): MLA attention in MQA
  mode over the selected latent entries, forward and backward.

The wrappers check their inputs and raise `KernelInputError`. Compiled kernels need CUDA
tensors; on the CPU they run through Triton's interpreter when TRITON_INTERPRET=1 is set
before this package is imported (Triton reads it when a kernel is defined).
"""

from kernels.compare import Closeness, assert_close, compare
from kernels.errors import KernelInputError
from kernels.indexer import indexer_logits, indexer_logits_reference
from kernels.selection import indexer_topk, indexer_topk_reference
from kernels.sparse_mla import sparse_attention_forward, sparse_attention_reference
from kernels.sparse_mla_backward import sparse_attention, sparse_attention_backward
from kernels.topk import causal_topk, causal_topk_reference

__all__ = [
    "Closeness",
    "KernelInputError",
    "assert_close",
    "causal_topk",
    "causal_topk_reference",
    "compare",
    "indexer_logits",
    "indexer_logits_reference",
    "indexer_topk",
    "indexer_topk_reference",
    "sparse_attention",
    "sparse_attention_backward",
    "sparse_attention_forward",
    "sparse_attention_reference",
]

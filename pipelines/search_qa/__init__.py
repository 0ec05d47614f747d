"""Search-agent QA: questions about long-tail entities that only searching answers.

The embedded corpus is a seeded world of fictional entities (`world`), searched through a
local full-text index (`index`). Questions chain two or three facts from a sampled
long-tail entity (`questions`). A question is accepted only when a verifier with search
confirms its answer over several passes and every candidate answer of the answer agents
is wrong (`pipeline`). `envsynth/Search-v0` gives an agent the same index.
"""

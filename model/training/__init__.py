"""Training the bundled DSA model: data, losses, the staged recipe, parity and checkpoints.

`loop.train` runs the recipe of DeepSeek-V3.2's sparse attention at small scale — dense
training, the indexer's dense warm-up, sparse training, SFT on distilled trajectories —
over `data.TrainingData` (long-range retrieval and the general pipeline's reference
solutions); `parity.parity` compares dense and sparse mode on held-out data;
`checkpoint` reads and writes the safetensors format; `cli.train_app` is `envsynth train`.
"""

"""Data-flow-space evolutionary merging: evolved layer paths with scaling (Akiba et al.,
"Evolutionary Optimization of Model Merging Recipes", arXiv 2403.13187, Sec. 3.2).

- :mod:`.config`: the ``dfs:`` block of an evolve config;
- :mod:`.checks`: which models can be combined (family, residual width, tokenizer);
- :mod:`.genome`: slots, indicators and scales <-> a path (with its repairs);
- :mod:`.path_model`: the in-memory path model that shares the loaded layers;
- :mod:`.export`: the path as a standard checkpoint, scales folded into the weights;
- :mod:`.space`: all of it behind :class:`~mergelab.evolve.space.SearchSpace`;
- :mod:`.plot`: the evolved path as a picture.
"""

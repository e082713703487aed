"""Dream 7B (Dream-org/Dream-v0-Base-7B, -Instruct-7B) as a native family.

- :mod:`.config`, :mod:`.network`, :mod:`.checkpoint`: the network from the official layout;
- :mod:`.protocol`: its sampler (the one sampler of :mod:`evalsuite.diffusion.sampler` with
  Dream's settings) and likelihood entry points, Dream's setting names and defaults;
- :mod:`.likelihood`: Dream's likelihood protocol (EOS appended, MC / ar_ftb);
- :mod:`.tiny`: the bundled random ``dream-tiny`` checkpoint with a tokenizer.
"""

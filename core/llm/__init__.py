"""Generator engines: the Backend protocol, the one token session every engine streams
through, and the llama.cpp, transformers and mlx-lm backends with their registry; imports
only the layers below it (core.config, core.errors, core.hardware), never core.agent,
core.knowledge or anything above them."""

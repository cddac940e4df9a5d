"""Knowledge bases: documents loaded, chunked, embedded into versioned ChromaDB collections and
searched (dense, BM25, hybrid), with ``service`` as the entry for every use case; it imports
only the layers below it (``core.llm`` and the small shared modules), never ``core.agent``,
``core.workspace`` or anything above them, and never Qt."""

"""The models the app can run: the installed ones by name (bundled, pulled, added, tuned),
the Hugging Face hub (search, resumable pulls into its cache) and the model use cases
(``service``); imports only ``core.llm`` and the base modules, never ``core.workspace``
or anything above it."""

"""The models the app knows: the bundled default and the models tuned here."""

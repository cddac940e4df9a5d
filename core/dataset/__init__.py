"""Datasets: verified reasoning-and-search traces made from a knowledge base (generated,
imported, edited, exported), ready to train on; it imports only the layers below it
(workspace, models, agent, knowledge, llm and the base modules), never training, compare,
colab, cli or Qt."""

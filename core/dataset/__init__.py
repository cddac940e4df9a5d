"""Datasets: verified reasoning-and-search traces from a knowledge base, ready to train on."""

"""Kernel-accelerated building blocks shared by every Seer model. Imports torch (and triton) only."""

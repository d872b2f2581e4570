"""Sharded test runs: ``--cleanroom-shard=K/N`` runs the K-th of N parts of a suite."""

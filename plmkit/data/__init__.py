"""Pretraining data: objectives (pure functions of token ids), the corpus→shards build, collation."""

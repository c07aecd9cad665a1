"""bloom_worker: a tensor-parallel INT8 BLOOM runtime, one shard per rank, rank 0 serves the API.

Modules, one concern each: env (the env contract), format (shard format and manifest), shards
(writing a shard directory), convert_hf / import_deepspeed / convert (bloom-convert), loader
(verify and map a rank's shard), model (the TP model), engine (batched lockstep generation),
rendezvous, health (a pod's health server), report (launcher <-> rank channel), metrics, server
(HTTP API), tokenizer, main (bloom-worker: launcher or rank), launcher (a pod's rank processes), rank
(one rank process).
"""

__version__ = "0.1.0"

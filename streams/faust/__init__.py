"""The distributed runtime: the same `CircuitTracker` as a Faust worker on Kafka.

Faust has no stream-stream joins; the join is the order-keyed table, so every
topic the tracker reads is partitioned by order id. Import `app.build_app` only
where Faust is installed (the `kafka` extra); the settings and partitioning
helpers import without it.
"""

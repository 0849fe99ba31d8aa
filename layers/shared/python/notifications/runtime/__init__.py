"""Composition roots, one per function kind: settings, clients and services built once per execution environment.

Domain modules (``ingest``, ``fanout``, ``delivery``) take their ports as arguments; only these modules choose the
adapters (DynamoDB, Kafka, the channel's provider) and read the environment.
"""

"""Operator tools: run by hand against the deployed cluster (MSK with IAM, or any Kafka) as well as the local one."""

"""Kafka adapters: the producer (publisher port and its kafka-python implementation) and the MSK event codec."""
